"""Ego-motion warp of a tri-plane latent: the scene of the current frame seen from the next ego
pose. The `warp` motion prior of the forecaster (an addition to GenieDrive; the `paper` config
keeps the official prior-free predictor) starts each step from this warped latent and learns a
residual on top of it, so the commanded motion is built into the forecast instead of learned.

The xy plane is a 50x50 bird's-eye grid over x, y in [-40, 40) m (1.6 m cells); it is resampled
with the full planar motion (rotation + translation). The xz and yz planes are height profiles
per row / column of that grid; they are shifted by the translation along their own axis only
(a yaw mixes x and y, which two separate profiles cannot represent exactly).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.occ3d import RANGE_MIN
from .vae import PLANE_COLS
HALF_RANGE = float(-RANGE_MIN[0])  # 40 m: normalised grid coordinates are metres / HALF_RANGE


def _centres(n: int, like: torch.Tensor) -> torch.Tensor:
    """Normalised cell centres in [-1, 1] (align_corners=False convention)."""
    return (torch.arange(n, device=like.device, dtype=like.dtype) + 0.5) * (2.0 / n) - 1.0


def warp_latent(latent: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """latent [B, C, 50, 58] in the current ego frame; step [B, 4, 4] the next ego pose in the
    current frame (x forward, y left). Returns the latent seen from the next pose [B, C, 50, 58].

    Bilinear resampling; cells that come from outside the grid repeat its border (the road
    ahead continues), which the forecaster's residual then corrects.
    """
    xy, xz, yz = torch.split(latent, PLANE_COLS, dim=3)
    b, n = latent.shape[0], PLANE_COLS[0]
    step = step.to(latent.dtype)
    c = _centres(n, latent)
    gx, gy = torch.meshgrid(c, c, indexing="ij")  # next-frame cell centres [50, 50]
    rot, t = step[:, :2, :2], step[:, :2, 3] / HALF_RANGE
    ax = rot[:, 0, 0, None, None] * gx + rot[:, 0, 1, None, None] * gy + t[:, 0, None, None]
    ay = rot[:, 1, 0, None, None] * gx + rot[:, 1, 1, None, None] * gy + t[:, 1, None, None]
    # grid_sample reads grid[..., 0] along the last axis (y here) and grid[..., 1] along rows (x).
    xy = F.grid_sample(xy, torch.stack([ay, ax], -1), align_corners=False, padding_mode="border")
    cz = _centres(PLANE_COLS[1], latent)
    rows = c.view(1, n, 1).expand(b, n, PLANE_COLS[1])
    zs = cz.view(1, 1, -1).expand(b, n, PLANE_COLS[1])
    grid_xz = torch.stack([zs, rows + t[:, 0, None, None]], -1)
    grid_yz = torch.stack([zs, rows + t[:, 1, None, None]], -1)
    xz = F.grid_sample(xz, grid_xz, align_corners=False, padding_mode="border")
    yz = F.grid_sample(yz, grid_yz, align_corners=False, padding_mode="border")
    return torch.cat([xy, xz, yz], 3)

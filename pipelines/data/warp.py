"""Label grids under ego motion: one grid seen from another ego pose (nearest voxel, planar).

The one warp behind the forecaster's observation fusion (occworld.observation_fusion) and the
ego-warp baseline of `gdrive evaluate occ` (metrics.ego_motion), so baseline and model see the
same warp. It sits in `data/`, below both, because it needs only the Occ3D grid geometry.
"""

from __future__ import annotations

import torch

from .occ3d import FREE, RANGE_MIN, VOXEL_SIZE


def _centres(n: int, axis: int, device: torch.device) -> torch.Tensor:
    """Voxel-centre coordinates along `axis` in metres, float64 (the index lookup floors them)."""
    return RANGE_MIN[axis] + (torch.arange(n, device=device, dtype=torch.float64) + 0.5) * VOXEL_SIZE


def warp_labels(occ: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid `occ` (ego frame A) seen from ego frame B, where `pose` is B's ego pose in A.

    occ [B, X, Y, Z] integer labels; pose [B, 4, 4]. Nearest-voxel lookup of each B column centre
    in A (planar motion: a z column moves with its (x, y) cell, shifted by the height change in
    whole voxels). Returns (labels [B, X, Y, Z] in occ's dtype, FREE where they come from outside
    A; inside [B, X, Y] bool, True where the column came from inside A).
    """
    b, nx, ny, nz = occ.shape
    dev = occ.device
    pose = pose.to(torch.float64)
    gx, gy = torch.meshgrid(_centres(nx, 0, dev), _centres(ny, 1, dev), indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)])  # [2, X*Y]
    a = pose[:, :2, :2] @ pts + pose[:, :2, 3:4]  # [B, 2, X*Y] in A
    ix = torch.floor((a[:, 0] - RANGE_MIN[0]) / VOXEL_SIZE).long()
    iy = torch.floor((a[:, 1] - RANGE_MIN[1]) / VOXEL_SIZE).long()
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    src = torch.where(inside, ix * ny + iy, 0)
    cols = occ.reshape(b, nx * ny, nz).gather(1, src.unsqueeze(-1).expand(b, nx * ny, nz))
    # Height change in whole voxels (round half to even, as Python's round); z' = z + dz in A.
    dz = torch.round(pose[:, 2, 3] / VOXEL_SIZE).long()
    z = torch.arange(nz, device=dev).view(1, 1, nz) + dz.view(b, 1, 1)
    z_ok = (z >= 0) & (z < nz)
    cols = cols.gather(2, z.clamp(0, nz - 1).expand(b, nx * ny, nz))
    cols = torch.where(z_ok & inside.unsqueeze(-1), cols, torch.full_like(cols, FREE))
    return cols.view(b, nx, ny, nz), inside.view(b, nx, ny)

"""Observation fusion: the decoded forecast corrected by the current observation, ego-warped.

A forecast frame passes through the VAE, whose reconstruction caps its semantic accuracy (about
85 mIoU for `small`), while copying the current frame to the commanded pose (the ego-warp
baseline) is exact for every static voxel still inside the grid but wrong for whatever moves and
blind to what comes into view. The fusion head (an addition to GenieDrive, on in `small`, off in
`paper`) sees both, per voxel: the decoded class, the warped observed label and whether that
voxel was inside the observed grid, and looks the frame's logits up in a learned table. It starts
by keeping the decoded class, and is trained by `gdrive train-forecaster --stage fuse` (VAE and
forecaster frozen).

`warp_labels` is also the ego-warp baseline of `gdrive evaluate occ`, so the two agree exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.occ3d import FREE, RANGE_MIN, VOXEL_SIZE


def accumulated_poses(steps: torch.Tensor) -> torch.Tensor:
    """[B, F, 4, 4] ego steps (each in the previous ego frame) -> [B, F, 4, 4] the ego pose of
    future frame i+1 in the frame of the last observation (running product of the steps)."""
    out, moved = [], torch.eye(4, dtype=steps.dtype, device=steps.device).expand(steps.shape[0], 4, 4)
    for i in range(steps.shape[1]):
        moved = moved @ steps[:, i]
        out.append(moved)
    return torch.stack(out, 1)


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


class ObservationFusion(nn.Module):
    """Forecast logits per voxel, looked up from (decoded class, warped observed class, inside).

    A learned table of C logits for each of the C * C * 2 contexts, so the head can tell, for
    instance, that a voxel the decoder calls road but the warped observation calls traffic cone is
    most often still a cone, while one it calls road and the observation calls sidewalk is most
    often road. Trained by cross-entropy, each row converges to the log of that context's label
    posterior in the training forecasts. A per-voxel MLP on the decoded probabilities (the head
    this replaced) could not overturn the decoder's confident logits on rare classes (traffic cone
    IoU 35 vs 56 for the plain warp), the table can (measured in the CHANGELOG).
    The decoded class enters through argmax, so no gradient flows from the head into the VAE or
    the forecaster: the `e2e` stage trains on the decoded logits and `fuse` fits the table after.
    Start: the decoded class gets logit START_LOGIT and every other class 0, so an untrained head
    keeps the decoder's labels.
    """

    START_LOGIT = 1.0

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        start = torch.zeros(num_classes, num_classes, 2, num_classes)  # [decoded, warped, inside, out]
        start[torch.arange(num_classes), :, :, torch.arange(num_classes)] = self.START_LOGIT
        self.table = nn.Parameter(start.reshape(-1, num_classes))

    def forward(self, logits: torch.Tensor, warped: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """logits [B, C, X, Y, Z]; warped [B, X, Y, Z] labels; inside [B, X, Y] -> [B, C, X, Y, Z]."""
        flag = inside.unsqueeze(-1).expand(warped.shape)
        return self.lookup(logits.argmax(1), warped, flag).permute(0, 4, 1, 2, 3)

    def lookup(self, decoded: torch.Tensor, warped: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """Logits [..., C] for decoded and warped labels and the inside flag, all of one shape [...]."""
        return self.table[self.context(decoded, warped, inside)]

    def context(self, decoded: torch.Tensor, warped: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """Row index of the table for labels decoded, warped (same shape) and the inside flag."""
        return (decoded.long() * self.num_classes + warped.long()) * 2 + inside.long()

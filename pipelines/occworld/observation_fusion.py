"""Observation fusion: the decoded forecast corrected by the current observation, ego-warped.

A forecast frame passes through the VAE, whose reconstruction caps its semantic accuracy (about
85 mIoU for `small`), while copying the current frame to the commanded pose (the ego-warp
baseline) is exact for every static voxel still inside the grid but wrong for whatever moves and
blind to what comes into view. The fusion head (an addition to GenieDrive, on in `small`, off in
`paper`) sees both, per voxel: the decoded class, the warped observed label and whether that
voxel was inside the observed grid, and looks the frame's logits up in a learned table. It starts
by keeping the decoded class, and is trained by `gdrive train-forecaster --stage fuse` (VAE and
forecaster frozen).

The warped observation comes from `data.warp.warp_labels`, which is also the ego-warp baseline of
`gdrive evaluate occ` (metrics.ego_motion), so the two agree exactly.
"""

from __future__ import annotations

import torch
from torch import nn


def accumulated_poses(steps: torch.Tensor) -> torch.Tensor:
    """[B, F, 4, 4] ego steps (each in the previous ego frame) -> [B, F, 4, 4] the ego pose of
    future frame i+1 in the frame of the last observation (running product of the steps)."""
    out, moved = [], torch.eye(4, dtype=steps.dtype, device=steps.device).expand(steps.shape[0], 4, 4)
    for i in range(steps.shape[1]):
        moved = moved @ steps[:, i]
        out.append(moved)
    return torch.stack(out, 1)


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

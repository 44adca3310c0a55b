"""Attention blocks in plain PyTorch: multi-head attention and 2-D deformable attention.

Deformable attention follows Deformable-DETR (one feature level): each query predicts, per head,
`points` sampling offsets around its reference point and a softmax weight per point; values are
read by bilinear interpolation (`F.grid_sample`), so it runs on CPU and CUDA without a compiled op.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (bias), as the official code."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor | None = None) -> torch.Tensor:
        """query [B, Nq, C], key/value [B, Nk, C] -> [B, Nq, C]."""
        value = key if value is None else value
        b, nq, c = query.shape
        h = self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, -1, h, c // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.q(query)), split(self.k(key)), split(self.v(value)),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(out.transpose(1, 2).reshape(b, nq, c))


class DeformableAttention2D(nn.Module):
    """Deformable self-attention over one H x W feature map (1 level)."""

    def __init__(self, dim: int, heads: int = 8, points: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"deformable attention dim {dim} is not divisible by {heads} heads")
        self.heads, self.points = heads, points
        self.sampling_offsets = nn.Linear(dim, heads * points * 2)
        self.attention_weights = nn.Linear(dim, heads * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Offsets start at zero weight with a bias that fans the points out in `heads` directions,
        # growing with the point index (the Deformable-DETR initialisation).
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.heads, 1, 2).repeat(1, self.points, 1)
        grid = grid * torch.arange(1, self.points + 1, dtype=torch.float32).view(1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    @staticmethod
    def reference_points(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """Cell centres of an h x w map, normalised to [0, 1], as (x, y): [h * w, 2]."""
        ys, xs = torch.meshgrid(
            (torch.arange(h, device=device, dtype=dtype) + 0.5) / h,
            (torch.arange(w, device=device, dtype=dtype) + 0.5) / w,
            indexing="ij",
        )
        return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)

    def forward(self, query: torch.Tensor, value: torch.Tensor, shape: tuple[int, int],
                reference: torch.Tensor | None = None) -> torch.Tensor:
        """query [B, N, C] (N = H*W, row-major), value [B, H*W, C] -> [B, N, C]."""
        b, n, c = query.shape
        h, w = shape
        heads, points = self.heads, self.points
        if reference is None:
            reference = self.reference_points(h, w, query.device, query.dtype)
        v = self.value_proj(value).view(b, h * w, heads, c // heads)
        v = v.permute(0, 2, 3, 1).reshape(b * heads, c // heads, h, w)
        offsets = self.sampling_offsets(query).view(b, n, heads, points, 2)
        weights = self.attention_weights(query).view(b, n, heads, points).softmax(-1)
        normaliser = torch.tensor([w, h], device=query.device, dtype=query.dtype)
        loc = reference.view(1, n, 1, 1, 2) + offsets / normaliser  # [B, N, heads, points, 2] in [0, 1]
        grid = (2.0 * loc - 1.0).permute(0, 2, 1, 3, 4).reshape(b * heads, n, points, 2)
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # sampled [B*heads, C/heads, N, points]; weight the points per head.
        w_ = weights.permute(0, 2, 1, 3).reshape(b * heads, 1, n, points)
        out = (sampled * w_).sum(-1).view(b, heads, c // heads, n)
        return self.output_proj(out.permute(0, 3, 1, 2).reshape(b, n, c))

"""Normalized Multi-View Attention (GenieDrive occ_render), in plain PyTorch on diffusers parts.

The video transformer sees each camera as its own sample: hidden states are [B·V, F·H·W, C] with
the V views of a sample consecutive, in the rig's ring order. This module lets the views exchange
information along image rows: every (sample, latent frame, token row) becomes one sequence of V·W
tokens, the views' rows laid side by side, so that a row continues across the seam into the
neighbouring camera. The sequence goes through LayerNorm (no affine) and full self-attention with
RMS q/k norm and a 1-D RoPE over the V·W positions (diffusers' `WanAttention`, so the projections
and norms are the same kind as in the Wan blocks). The attention output y is standardised and
given the statistics of the block input x, then added with a small weight:

    y' = (y - mean_y) * std_x / (std_y + 1e-5) + mean_x,    x <- x + eta * y'

with mean and std per sequence over tokens x channels. The rescaling keeps the residual on the
scale of the pretrained stream whatever the new (randomly initialised) attention produces.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor
from torch import nn

STD_EPS = 1e-5


def to_row_sequences(x: torch.Tensor, num_views: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """[B·V, F·H·W, C] -> [B·F·H, V·W, C]: one sequence per (sample, frame, row), views side by side."""
    bv, _, c = x.shape
    f, h, w = grid
    if bv % num_views:
        raise ValueError(f"batch {bv} is not a whole number of {num_views}-view groups")
    b = bv // num_views
    x = x.reshape(b, num_views, f, h, w, c).permute(0, 2, 3, 1, 4, 5)
    return x.reshape(b * f * h, num_views * w, c)


def from_row_sequences(s: torch.Tensor, num_views: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """[B·F·H, V·W, C] -> [B·V, F·H·W, C], the inverse of `to_row_sequences`."""
    f, h, w = grid
    c = s.shape[-1]
    b = s.shape[0] // (f * h)
    s = s.reshape(b, f, h, num_views, w, c).permute(0, 3, 1, 2, 4, 5)
    return s.reshape(b * num_views, f * h * w, c)


def match_statistics(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y' = (y - mean_y) * std_x / (std_y + 1e-5) + mean_x, statistics per sequence.

    y, x: [S, N, C]; mean and (unbiased) std over N x C for each of the S sequences.
    """
    dims = (1, 2)
    mean_y, std_y = y.mean(dims, keepdim=True), y.std(dims, keepdim=True)
    mean_x, std_x = x.mean(dims, keepdim=True), x.std(dims, keepdim=True)
    return (y - mean_y) * std_x / (std_y + STD_EPS) + mean_x


@lru_cache(maxsize=8)
def rope_1d(length: int, head_dim: int, device: torch.device, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary (cos, sin) for positions 0..length-1, shaped [1, length, 1, head_dim] as WanAttention expects.
    Cached: every multi-view call of a forward pass needs the same table (built on the CPU, then copied)."""
    cos, sin = get_1d_rotary_pos_embed(head_dim, length, theta, use_real=True, repeat_interleave_real=True,
                                       freqs_dtype=torch.float64)
    return cos[None, :, None].to(device), sin[None, :, None].to(device)


class NormalizedMultiViewAttention(nn.Module):
    """Cross-view row attention with statistics-matched residual.

    forward(x [B·V, F·H·W, C], grid (F, H, W)) -> [B·V, F·H·W, C]. Works for any token grid.
    """

    def __init__(self, dim: int, num_heads: int, num_views: int, eta: float = 0.2, eps: float = 1e-6):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
        self.num_views = num_views
        self.eta = eta
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        # q/k/v/out projections with bias and RMS norm over all heads: 4·(C² + C) + 2·C parameters
        self.attn = WanAttention(dim=dim, heads=num_heads, dim_head=self.head_dim, eps=eps,
                                 processor=WanAttnProcessor())

    def attend(self, seqs: torch.Tensor) -> torch.Tensor:
        """The raw multi-view attention output y for row sequences [S, V·W, C] -> [S, V·W, C]."""
        rotary = rope_1d(seqs.shape[1], self.head_dim, seqs.device)
        normed = self.norm(seqs.float()).type_as(seqs)
        return self.attn(normed, None, None, rotary)

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        seqs = to_row_sequences(x, self.num_views, grid)
        y = self.attend(seqs)
        # statistics in float32: bf16 std over ~10^5 elements is too coarse for the division
        seqs32 = seqs.float()  # one fp32 copy of the input, for the statistics and the sum
        out = seqs32 + self.eta * match_statistics(y.float(), seqs32)
        return from_row_sequences(out.type_as(x), self.num_views, grid)


def multiview_parameter_count(dim: int, num_heads: int, num_views: int, num_blocks: int) -> int:
    """Parameters added by `num_blocks` multi-view modules (built on the meta device, no memory)."""
    with torch.device("meta"):
        module = NormalizedMultiViewAttention(dim, num_heads, num_views)
    return num_blocks * sum(p.numel() for p in module.parameters())

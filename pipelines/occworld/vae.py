"""The tri-plane VAE (GenieDrive shapes): 200x200x16 labels <-> a [C, 50, 58] tri-plane latent.

Encoder: class embedding -> 1x1x1 conv -> two stride-2 3-D convs (50x50x4) -> one axis transformer
per plane (xy pools z, xz pools y, yz pools x) -> per-position posterior (mu, logvar). The latent
concatenates the planes on the last axis: [xy (50) | xz (4) | yz (4)] = 58 columns.
Decoder: Hadamard product of the broadcast planes + a learned positional volume -> two stride-2
transposed convs -> per-voxel class head (logits [B, 18, 200, 200, 16]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .configs import VAEConfig

LATENT_ROWS = 50
PLANE_COLS = (50, 4, 4)  # xy, xz, yz widths in the latent


class PostNormBlock(nn.Module):
    """Self-attention -> dropout -> add -> LayerNorm -> FFN (ReLU) -> dropout -> add -> LayerNorm."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, x)))
        return self.norm2(x + self.drop(self.ffn(x)))


class AxisTransformer(nn.Module):
    """Collapses one axis of a [B, C, X, Y, Z] volume: each column along the axis is a sequence
    with a learnable token appended and a learned position embedding; the readout is sequence
    position 0 (the first voxel, not the token: the official quirk, kept for checkpoint parity)."""

    def __init__(self, dim: int, length: int, heads: int, depth: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, dim))
        self.pos = nn.Parameter(torch.randn(length + 1, dim))
        self.blocks = nn.ModuleList(PostNormBlock(dim, heads, ffn_dim, dropout) for _ in range(depth))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq [N, L, C] -> [N, C]."""
        x = torch.cat([seq, self.token.expand(seq.shape[0], 1, -1)], 1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return x[:, 0]


class TriplaneVAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        d, kd, ku = cfg.dim, cfg.down_kernel, cfg.up_kernel
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim)
        self.stem = nn.Conv3d(cfg.embed_dim, d, 1)
        self.down1 = nn.Conv3d(d, d, kd, stride=2, padding=kd // 2)
        self.down2 = nn.Conv3d(d, d, kd, stride=2, padding=kd // 2)
        args = (cfg.heads, cfg.depth, cfg.ffn_dim, cfg.dropout)
        self.axis_xy = AxisTransformer(d, 4, *args)  # pools z
        self.axis_xz = AxisTransformer(d, 50, *args)  # pools y
        self.axis_yz = AxisTransformer(d, 50, *args)  # pools x
        self.post_xy = nn.Linear(d, 2 * d)
        self.post_xz = nn.Linear(d, 2 * d)
        self.post_yz = nn.Linear(d, 2 * d)
        self.pos_volume = nn.Parameter(torch.randn(1, 1, 50, 50, 4))
        pad = (ku - 2) // 2  # k4/p1 (and k2/p0) double the size exactly
        self.up1 = nn.ConvTranspose3d(d, d, ku, stride=2, padding=pad)
        self.up2 = nn.ConvTranspose3d(d, d, ku, stride=2, padding=pad)
        self.head = nn.Sequential(nn.Linear(d, cfg.num_classes), nn.ReLU(), nn.Dropout(cfg.dropout),
                                  nn.Linear(cfg.num_classes, cfg.num_classes))

    # -- encoder ------------------------------------------------------------------------------

    def encode_planes(self, occ: torch.Tensor) -> dict[str, torch.Tensor]:
        """occ [B, 200, 200, 16] int labels -> planes {xy [B,C,50,50], xz [B,C,50,4], yz [B,C,50,4]}."""
        x = self.embed(occ.long()).permute(0, 4, 1, 2, 3)  # [B, E, X, Y, Z]
        x = self.down2(F.relu(self.down1(self.stem(x))))  # [B, C, 50, 50, 4]
        b, c, nx, ny, nz = x.shape
        xy = self.axis_xy(x.permute(0, 2, 3, 4, 1).reshape(b * nx * ny, nz, c)).view(b, nx, ny, c)
        xz = self.axis_xz(x.permute(0, 2, 4, 3, 1).reshape(b * nx * nz, ny, c)).view(b, nx, nz, c)
        yz = self.axis_yz(x.permute(0, 3, 4, 2, 1).reshape(b * ny * nz, nx, c)).view(b, ny, nz, c)
        return {"xy": xy, "xz": xz, "yz": yz}  # channels last

    def posterior(self, occ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """occ [B, 200, 200, 16] -> (mu, logvar), each [B, C, 50, 58]."""
        planes = self.encode_planes(occ)
        mus, logvars = [], []
        for name, proj in (("xy", self.post_xy), ("xz", self.post_xz), ("yz", self.post_yz)):
            mu, logvar = proj(planes[name]).chunk(2, dim=-1)
            mus.append(mu)
            logvars.append(logvar)
        mu = torch.cat(mus, 2).permute(0, 3, 1, 2).contiguous()
        logvar = torch.cat(logvars, 2).permute(0, 3, 1, 2).contiguous()
        return mu, logvar

    def encode(self, occ: torch.Tensor, sample: bool | None = None) -> torch.Tensor:
        """occ [B, 200, 200, 16] -> latent [B, C, 50, 58]; samples in training mode, mu in eval."""
        mu, logvar = self.posterior(occ)
        if sample if sample is not None else self.training:
            return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return mu

    # -- decoder ------------------------------------------------------------------------------

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latent [B, C, 50, 58] -> logits [B, 18, 200, 200, 16]."""
        xy, xz, yz = torch.split(z, PLANE_COLS, dim=3)
        vol = xy.unsqueeze(-1) * xz.unsqueeze(3) * yz.unsqueeze(2) + self.pos_volume  # [B, C, 50, 50, 4]
        vol = self.up2(F.relu(self.up1(vol)))  # [B, C, 200, 200, 16]
        return self.head(vol.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)

    def forward(self, occ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """occ -> (logits [B, 18, 200, 200, 16], mu, logvar)."""
        mu, logvar = self.posterior(occ)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Σ -0.5·(1 + logvar - mu² - e^logvar) over all latent elements, divided by their number."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum() / mu.numel()

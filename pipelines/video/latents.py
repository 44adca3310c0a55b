"""Pixels <-> normalised Wan latents, and the 48-channel transformer input.

Videos are [V, N, 3, H, W] floats in [0, 1] (views in the rig's ring order); the Wan VAE works in
[-1, 1] on [V, 3, N, H, W] and gives [V, z, (N - 1) / 4 + 1, H / 8, W / 8]. Latents are normalised
with the VAE config's per-channel `latents_mean` / `latents_std`, as diffusers' Wan pipelines do,
so that the flow-matching noise (unit variance) matches the data scale.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

from .configs import VideoConfig


def build_vae(config: VideoConfig, seed: int | None = None) -> AutoencoderKLWan:
    """A randomly initialised Wan VAE for `config` (tests; real runs load the base model's VAE)."""
    if seed is not None:
        torch.manual_seed(seed)
    return AutoencoderKLWan(**config.vae.diffusers_kwargs())


def _latent_stats(vae: AutoencoderKLWan, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=like.dtype)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=like.dtype)
    return mean.view(1, -1, 1, 1, 1), std.view(1, -1, 1, 1, 1)


def _vae_dtype(vae: AutoencoderKLWan) -> torch.dtype:
    return next(vae.parameters()).dtype


def encode_video(vae: AutoencoderKLWan, video: torch.Tensor) -> torch.Tensor:
    """[V, N, 3, H, W] in [0, 1] -> normalised latents [V, z, (N-1)/4+1, H/8, W/8] (posterior mode).

    uint8 input is read as 0..255.
    """
    if video.dtype == torch.uint8:
        video = video.float() / 255.0
    pixels = (video.permute(0, 2, 1, 3, 4) * 2.0 - 1.0).to(_vae_dtype(vae))
    latents = vae.encode(pixels).latent_dist.mode().float()
    mean, std = _latent_stats(vae, latents)
    return (latents - mean) / std


def decode_latents(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents [V, z, F, h, w] -> video [V, 4(F-1)+1, 3, 8h, 8w] in [0, 1]."""
    mean, std = _latent_stats(vae, latents.float())
    raw = (latents.float() * std + mean).to(_vae_dtype(vae))
    pixels = vae.decode(raw).sample.float()
    return ((pixels + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 1, 3, 4)


def first_frame_latents(vae: AutoencoderKLWan, first: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """First-frame latents [V, z, F, h, w]: the encoded image at latent frame 0, zeros elsewhere.

    first: [V, 3, H, W] in [0, 1], or None (no reference frame: all zeros, as the condition
    dropout trains for). like: latents [V, z, F, h, w] giving the shape.
    """
    out = torch.zeros_like(like)
    if first is not None:
        out[:, :, :1] = encode_video(vae, first[:, None]).to(like.dtype)
    return out


def model_input(noisy: torch.Tensor, condition: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """noisy | condition | first-frame latents, each [B·V, z, F, h, w] -> [B·V, 3z, F, h, w]."""
    return torch.cat([noisy, condition.to(noisy.dtype), first.to(noisy.dtype)], dim=1)


def text_context(prompt_embeds: torch.Tensor | None, batch: int, num_views: int, config: VideoConfig,
                 device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Prompt embeddings [B, L, text_dim] (or None: zeros [B, text_len, text_dim]) -> [B·V, L, text_dim].

    A prompt belongs to a sample and is shared by its views. A [1, L, D] prompt is broadcast
    over the batch.
    """
    if prompt_embeds is None:
        prompt_embeds = torch.zeros(batch, config.text_len, config.transformer.text_dim)
    if prompt_embeds.ndim != 3 or prompt_embeds.shape[-1] != config.transformer.text_dim:
        raise ValueError(f"prompt embeddings must be [B, L, {config.transformer.text_dim}], "
                         f"got {tuple(prompt_embeds.shape)}")
    if prompt_embeds.shape[0] == 1 and batch > 1:
        prompt_embeds = prompt_embeds.expand(batch, -1, -1)
    return prompt_embeds.to(device, dtype).repeat_interleave(num_views, dim=0)

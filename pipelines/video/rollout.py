"""Multi-view video generation from condition videos, in chunks (rollout) up to any 4k + 1 length.

A chunk of L frames (official 81) is sampled from the condition video's frames and a first-frame
latent; the last generated frame of each view then seeds the next chunk as its first frame, and
that chunk starts at the seam frame, so chunks overlap by exactly one frame, which is kept once.
N = 241 frames with L = 81 is three rounds (81 + 80 + 80). When N does not fill the last round,
the last chunk is shorter (still 4k + 1, since N - 1 and L - 1 are multiples of 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from diffusers import AutoencoderKLWan

from ..errors import BadInput
from .configs import VideoConfig
from .flow import sample_latents
from .conditioning import as_clip_input, round_reference
from .latents import decode_latents, encode_video, text_context
from .model import MultiViewWanTransformer


def check_frames(frames: int, flag: str = "--frames", multiple: int = 4) -> int:
    """Frame counts must be k·4 + 1 (the VAE keeps the first frame and compresses time 4x)."""
    if frames >= 1 and (frames - 1) % multiple == 0:
        return frames
    if frames < 1:
        near = "1"
    else:
        below = (frames - 1) // multiple * multiple + 1
        near = f"{below} or {below + multiple}"
    raise BadInput(f"{flag} {frames}: frame counts must be {multiple}k + 1; nearest valid: {near}")


def check_resolution(height: int, width: int, multiple: int, flag: str = "--resolution") -> tuple[int, int]:
    """Height and width must be multiples of VAE stride x patch size (16 for Wan2.1)."""
    if height >= multiple and width >= multiple and height % multiple == 0 and width % multiple == 0:
        return height, width

    def down(v: int) -> int:
        return max(multiple, v // multiple * multiple)

    def up(v: int) -> int:
        return max(multiple, -(-v // multiple) * multiple)

    options = sorted({(down(height), down(width)), (up(height), up(width))})
    near = " or ".join(f"{h}x{w}" for h, w in options)
    raise BadInput(f"{flag} {height}x{width}: height and width must be positive multiples of {multiple} "
                   f"(VAE stride x patch size); nearest valid: {near}")


def chunk_starts(frames: int, chunk: int) -> list[tuple[int, int]]:
    """(start, length) of each rollout round; consecutive rounds share one frame."""
    if chunk < 2:
        raise ValueError("a rollout chunk needs at least 2 frames (one is shared with the previous chunk)")
    spans, start = [], 0
    while True:
        length = min(chunk, frames - start)
        spans.append((start, length))
        if start + length >= frames:
            return spans
        start += length - 1


@dataclass
class ChunkReport:
    """What `on_chunk` receives after each round (for progress, and to check the seams).

    frames: the round's decoded frames [V, length, 3, H, W] in [0, 1], seam frame included;
    first_frame: the image that seeded it [V, 3, H, W] (None for round 0 without one).
    """

    index: int
    count: int
    start: int
    frames: torch.Tensor
    first_frame: torch.Tensor | None


@dataclass
class GenerationSettings:
    """The sampling knobs a command exposes (--steps, --guidance, --chunk-frames, --seed); official defaults."""

    steps: int = 50
    guidance: float = 6.0
    shift: float = 5.0
    chunk_frames: int = 81
    seed: int = 43

    @classmethod
    def from_config(cls, config: VideoConfig) -> "GenerationSettings":
        s = config.sampling
        return cls(steps=s.steps, guidance=s.guidance, shift=config.flow.shift, chunk_frames=s.chunk_frames,
                   seed=s.seed)


def check_generation_inputs(conditions: torch.Tensor, config: VideoConfig, settings: GenerationSettings) -> None:
    if conditions.ndim != 5 or conditions.shape[2] != 3:
        raise ValueError(f"conditions must be [V, N, 3, H, W], got {tuple(conditions.shape)}")
    views, frames, _, height, width = conditions.shape
    if views != config.num_views:
        raise BadInput(f"conditions: {views} views, the video model needs {config.num_views} "
                       f"({', '.join(config.multiview.views)}); render all views of the rig")
    check_frames(frames, "--frames", config.vae.temporal_stride)
    check_frames(settings.chunk_frames, "--chunk-frames", config.vae.temporal_stride)
    if settings.chunk_frames < 1 + config.vae.temporal_stride:
        # a one-frame chunk is all seam: rollout would never advance
        raise BadInput(f"--chunk-frames {settings.chunk_frames}: must be at least {1 + config.vae.temporal_stride}")
    check_resolution(height, width, config.pixel_multiple)
    if settings.steps < 1:
        raise BadInput(f"--steps {settings.steps}: must be at least 1")


@torch.no_grad()
def generate_video(
    transformer: MultiViewWanTransformer,
    vae: AutoencoderKLWan,
    config: VideoConfig,
    conditions: torch.Tensor,
    settings: GenerationSettings | None = None,
    *,
    first_frame: torch.Tensor | None = None,
    first_clip_image: torch.Tensor | list[torch.Tensor] | None = None,
    image_encoder: torch.nn.Module | None = None,
    prompt_embeds: torch.Tensor | None = None,
    negative_embeds: torch.Tensor | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
) -> torch.Tensor:
    """Generate [V, N, 3, H, W] video in [0, 1] from condition videos [V, N, 3, H, W] in [0, 1].

    conditions: rendered semantic RGB frames, views in `config.multiview.views` order, N = 4k + 1.
    first_frame: optional [V, 3, H, W] reference image for frame 0 (each later round takes the
    previous round's last frame); first_clip_image: the images CLIP sees in round 0 ([V, 3, H', W']
    or V of [3, H', W']: the camera images at their own size, as the official pipeline; None:
    first_frame); image_encoder:
    the CLIP vision model, needed by i2v models when there is an image (see
    `conditioning.round_reference`). prompt_embeds / negative_embeds: [1, L, text_dim] or None
    (zeros); with neither given, guidance is skipped (both branches would see the same zero
    prompt). Runs on the transformer's device (the VAE and image encoder must be on it too);
    the result is on the CPU.
    """
    settings = settings or GenerationSettings.from_config(config)
    check_generation_inputs(conditions, config, settings)
    guidance = settings.guidance if prompt_embeds is not None or negative_embeds is not None else 1.0
    views, frames = conditions.shape[:2]
    device = next(transformer.parameters()).device
    generator = torch.Generator().manual_seed(settings.seed)
    context = text_context(prompt_embeds, 1, views, config, device)
    negative = None if negative_embeds is None else text_context(negative_embeds, 1, views, config, device)
    spans = chunk_starts(frames, settings.chunk_frames)
    pieces: list[torch.Tensor] = []
    seed_image, clip_image = first_frame, first_clip_image
    for index, (start, length) in enumerate(spans):
        cond_latents = encode_video(vae, conditions[:, start:start + length].to(device))
        ref = round_reference(config, vae, image_encoder, None if seed_image is None else seed_image.to(device),
                              clip_image, cond_latents)
        latents = sample_latents(transformer, cond_latents, ref.first, context, steps=settings.steps,
                                 shift=settings.shift, guidance=guidance, negative_context=negative,
                                 generator=generator, flow=config.flow, image=ref.image, full_ref=ref.full_ref)
        chunk = decode_latents(vae, latents).cpu()
        if on_chunk is not None:
            on_chunk(ChunkReport(index, len(spans), start, chunk, seed_image))
        # the seam frame was generated by the previous round: keep that one
        pieces.append(chunk if index == 0 else chunk[:, 1:])
        # the last frame of each view is the next round's reference, start and CLIP image
        seed_image = chunk[:, -1]
        clip_image = as_clip_input(seed_image)
    return torch.cat(pieces, dim=1)

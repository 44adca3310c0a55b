"""One fine-tuning step of the multi-view video transformer, and what it needs around it.

The official recipe: AdamW (lr 2e-5, weight decay 3e-2, eps 1e-10), constant lr after 100 warmup
steps, gradient-norm clipping at 0.05, all transformer modules trainable, gradient checkpointing.
The VAE stays frozen: batches are encoded once by `encode_training_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKLWan

from .conditioning import clip_features
from .configs import OptimSpec, VideoConfig
from .flow import FlowBatch, flow_matching_loss
from .latents import encode_video, first_frame_latents, text_context
from .model import MultiViewWanTransformer


def make_optimizer(model: MultiViewWanTransformer, optim: OptimSpec, lr: float | None = None) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=optim.lr if lr is None else lr, weight_decay=optim.weight_decay, eps=optim.eps)


def set_gradient_checkpointing(model: MultiViewWanTransformer, enabled: bool) -> None:
    """Recompute block activations in backward (blocks and multi-view modules): less memory, ~30% slower."""
    if enabled:
        model.enable_gradient_checkpointing()
    else:
        model.disable_gradient_checkpointing()


@torch.no_grad()
def encode_training_batch(vae: AutoencoderKLWan, videos: torch.Tensor, conditions: torch.Tensor,
                          config: VideoConfig, prompt_embeds: torch.Tensor | None = None,
                          image_encoder: torch.nn.Module | None = None) -> FlowBatch:
    """Pixel clips -> a latent FlowBatch.

    videos: real camera clips [B, V, N, 3, H, W] in [0, 1]; conditions: rendered semantic clips of
    the same shape; prompt_embeds: [B, L, text_dim] or None. The reference is the clip's own first
    frame, as the official trainer's `--control_ref_image first_frame`: its latents are the
    first-frame latents, and for i2v configs `image_encoder` (CLIP vision) gives its features.
    With that reference the official trainer always zeroes `full_ref` (it only carries a reference
    taken from elsewhere in the clip), so ref_conv models get zeros there, still as a leading frame.
    """
    b, v = videos.shape[:2]
    t = config.transformer
    device = next(vae.parameters()).device
    flat_videos = videos.flatten(0, 1).to(device)
    target = encode_video(vae, flat_videos)
    condition = encode_video(vae, conditions.flatten(0, 1).to(device))
    first = first_frame_latents(vae, flat_videos[:, 0], target)
    image = None
    if t.i2v:
        if image_encoder is None:
            raise ValueError(f"video config '{config.name}' (i2v) trains on CLIP features: pass its image_encoder")
        image = clip_features(image_encoder, flat_videos[:, 0]).to(device)
    full_ref = torch.zeros_like(first[:, :, 0]) if t.add_ref_conv else None
    return FlowBatch(target, condition, first, text_context(prompt_embeds, b, v, config, device), image, full_ref)


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    lr: float


def finetune_step(
    model: MultiViewWanTransformer,
    optimizer: torch.optim.Optimizer,
    batch: FlowBatch,
    config: VideoConfig,
    *,
    generator: torch.Generator | None = None,
    grad_clip: float | None = None,
    autocast_dtype: torch.dtype | None = None,
    noise: torch.Tensor | None = None,
    timestep_index: torch.Tensor | None = None,
) -> StepResult:
    """Loss on `batch`, backward, clip the gradient norm, AdamW step. Returns the pre-step loss.

    grad_clip: None uses config.optim.grad_clip. autocast_dtype: e.g. torch.bfloat16 on GPU.
    noise / timestep_index fix the randomness (see `flow_matching_loss`).
    """
    model.train()
    device = batch.target.device
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        loss = flow_matching_loss(model, batch, config.flow, generator, noise, timestep_index)
    loss.backward()
    clip = config.optim.grad_clip if grad_clip is None else grad_clip
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return StepResult(float(loss.detach()), float(grad_norm), optimizer.param_groups[0]["lr"])

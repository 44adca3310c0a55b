"""Flow matching for the multi-view video transformer: training loss and Euler sampler.

Convention (Wan / diffusers): x_t = (1 - sigma) x0 + sigma eps, the model predicts the velocity
eps - x0 at timestep t = 1000 sigma, and Euler steps x <- x + (sigma_next - sigma) v go from noise
(sigma = 1) to data (sigma = 0). Sigmas are shifted, sigma' = s sigma / (1 + (s - 1) sigma) with
s = 5.0 as in the official config, both for the training timesteps (a uniform index into the
shifted 1000-step table, shared by the V views of a sample, since they are one moment in time) and
for sampling (diffusers' `FlowMatchEulerDiscreteScheduler`).

Tensors: latents [B·V, z, F, h, w] with the V views of a sample consecutive.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from .configs import FlowSpec
from .latents import model_input
from .model import MultiViewWanTransformer


def make_scheduler(flow: FlowSpec, shift: float | None = None) -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=flow.num_train_timesteps,
                                           shift=flow.shift if shift is None else shift)


def training_sigmas(flow: FlowSpec, batch: int, num_views: int, generator: torch.Generator | None = None,
                    index: torch.Tensor | None = None) -> torch.Tensor:
    """One shifted sigma per sample, repeated over its views: [B·V].

    index: optional [B] indices into the 1000-step table (fixed timesteps for tests); else uniform.
    """
    table = make_scheduler(flow).sigmas  # [1000], descending, shifted
    if index is None:
        index = torch.randint(0, flow.num_train_timesteps, (batch,), generator=generator)
    return table[index].repeat_interleave(num_views)


def drop_conditions(latents: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each view's latents [B·V, ...] with probability p (so the model also learns without them)."""
    if p <= 0:
        return latents
    keep = torch.rand(latents.shape[0], generator=generator) >= p
    return latents * keep.to(latents.device, latents.dtype).view(-1, *([1] * (latents.ndim - 1)))


@dataclass
class FlowBatch:
    """One training batch in latent space (views of a sample consecutive).

    target: clean latents x0 [B·V, z, F, h, w]; condition: condition-video latents [B·V, z, F, h, w];
    first: first-frame latents [B·V, z, F, h, w] (frame 0 only); context: prompt embeddings
    [B·V, L, text_dim]; image: CLIP features of each view's first frame [B·V, tokens, image_dim]
    (i2v models, else None); full_ref: the ref_conv input [B·V, z, h, w] (add_ref_conv models).
    """

    target: torch.Tensor
    condition: torch.Tensor
    first: torch.Tensor
    context: torch.Tensor
    image: torch.Tensor | None = None
    full_ref: torch.Tensor | None = None


def flow_matching_loss(model: MultiViewWanTransformer, batch: FlowBatch, flow: FlowSpec,
                       generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                       timestep_index: torch.Tensor | None = None) -> torch.Tensor:
    """Masked MSE between the predicted and true velocity eps - x0 (scalar).

    Elements with |pred - target| > flow.loss_clip are left out (guards against rare blow-ups).
    `generator` draws the noise, timesteps and condition dropout; `noise` [B·V, z, F, h, w] and
    `timestep_index` [B] fix them. As the official trainer, the condition video, the first-frame
    latents and the CLIP features are each zeroed per view with p = flow.condition_dropout;
    full_ref is passed as given.
    """
    x0 = batch.target
    num_views = model.config.num_views
    sigma = training_sigmas(flow, x0.shape[0] // num_views, num_views, generator, timestep_index).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    s = sigma.view(-1, 1, 1, 1, 1).to(x0.dtype)
    noisy = (1.0 - s) * x0 + s * noise
    condition = drop_conditions(batch.condition, flow.condition_dropout, generator)
    first = drop_conditions(batch.first, flow.condition_dropout, generator)
    image = None if batch.image is None else drop_conditions(batch.image, flow.condition_dropout, generator)
    pred = model(model_input(noisy, condition, first), sigma * flow.num_train_timesteps, batch.context,
                 encoder_hidden_states_image=image, full_ref=batch.full_ref, return_dict=False)[0]
    err = pred.float() - (noise - x0).float()
    mask = err.abs() <= flow.loss_clip
    return (err.square() * mask).sum() / mask.sum().clamp(min=1)


@torch.no_grad()
def sample_latents(model: MultiViewWanTransformer, condition: torch.Tensor, first: torch.Tensor,
                   context: torch.Tensor, *, steps: int, shift: float, guidance: float = 1.0,
                   negative_context: torch.Tensor | None = None, generator: torch.Generator | None = None,
                   flow: FlowSpec = FlowSpec(), image: torch.Tensor | None = None,
                   full_ref: torch.Tensor | None = None) -> torch.Tensor:
    """Euler flow-matching sampling from noise: -> clean latents [B·V, z, F, h, w].

    condition, first: [B·V, z, F, h, w]; context / negative_context: [B·V, L, text_dim]
    (negative None: zeros); image: CLIP features [B·V, tokens, image_dim] (i2v models);
    full_ref: first-frame latents [B·V, z, h, w] (ref_conv models). guidance > 1 runs
    classifier-free guidance on the prompt, v = v_neg + g (v_pos - v_neg), both halves in one
    batch with the same video, image and reference inputs (as the official pipeline);
    guidance 1.0 runs the prompt only.
    """
    scheduler = make_scheduler(flow, shift)
    scheduler.set_timesteps(steps, device=condition.device)
    dtype = next(model.parameters()).dtype
    x = torch.randn(condition.shape, generator=generator).to(condition.device, torch.float32)
    use_cfg = guidance != 1.0

    def both(t: torch.Tensor | None) -> torch.Tensor | None:
        # [pos groups | neg groups]: each half is still whole V-view groups for the multi-view layers
        return None if t is None else (torch.cat([t, t]) if use_cfg else t).to(dtype)

    if use_cfg:
        negative = torch.zeros_like(context) if negative_context is None else negative_context
        context_in = torch.cat([context, negative.to(context)]).to(dtype)
    else:
        context_in = context.to(dtype)
    cond_in, first_in, image_in, ref_in = both(condition), both(first), both(image), both(full_ref)
    for t in scheduler.timesteps:
        x_in = torch.cat([x, x]) if use_cfg else x
        t_in = t.expand(x_in.shape[0]).to(x.device)
        v = model(model_input(x_in.to(dtype), cond_in, first_in), t_in, context_in,
                  encoder_hidden_states_image=image_in, full_ref=ref_in, return_dict=False)[0].float()
        if use_cfg:
            v_pos, v_neg = v.chunk(2)
            v = v_neg + guidance * (v_pos - v_neg)
        x = scheduler.step(v, t, x, return_dict=False)[0]
    return x

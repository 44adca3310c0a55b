"""The `finetune-video` stage: fine-tune the multi-view video model on a dataset's camera video.

The data (clips of camera images paired with rendered conditions) is `finetune_data`'s; the
request is resolved and checked by `finetune_plan`; this module renders the conditions and runs
the training.

The loop is the shared trainer (`runtime.trainer`: batches as a pure function of (seed, step),
safetensors checkpoints with optimiser state, `--resume`, DDP through torchrun) with the video
library's `finetune_step` as its step: flow matching, AdamW with the config's weight decay and
eps, linear warm-up, gradient-norm clipping; bf16 autocast and gradient checkpointing on CUDA only.
Every random draw of a step (clip starts, noise, timestep, condition dropout) comes from a
generator seeded by (seed, step, rank), so a resumed run ends identical to an uninterrupted one.

What else a step feeds the transformer, as the official trainer (`train_control.py`,
`--train_mode control_ref --control_ref_image first_frame --add_full_ref_image_in_self_attention`):
the clip's first frame per view as the reference (its latents in the first-frame channels); for
the released layout (i2v + ref_conv, only by --init from an imported model, which holds the CLIP
image encoder) the CLIP features of that frame and a zero `full_ref` (the official trainer zeroes
it whenever the reference is the first frame); condition video, first-frame latents and CLIP
features each dropped per view with p = 0.1. The prompt is the one `generate` samples the result
with: the official empty prompt by the --init model's umT5 when it has one with its tokenizer,
else zero embeddings.

video-models/<name>/   save_video_model's diffusers folder (video_config.json, transformer/, vae/; the
                       --init model's text_encoder/, image_encoder/, tokenizer/ when it has them)
                       + manifest.json (resolved request and config) + metrics.json;
                       loadable by `loading.load_video_model`.
runs/<name>/last/      the resumable run state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..console import ui
from ..errors import RunFailure
from ..runtime.distributed import init_distributed
from ..runtime.model_artifact import TrainingJob, run_training
from ..runtime.trainer import Stage
from ..sensors.render import RenderRequest, run_render
from ..store import Workspace
from ..store.artifacts import ArtifactWriter
from .finetune import encode_training_batch, finetune_step, make_optimizer, set_gradient_checkpointing
from .finetune_data import camera_frames, clip_span, clip_start, condition_frames, to_video_tensor
from .finetune_plan import KIND, FinetuneVideoRequest, Plan, plan_finetune
from .generation_inputs import resolve_prompts
from .loading import (
    IMAGE_ENCODER_DIR,
    TEXT_ENCODER_DIR,
    TOKENIZER_DIR,
    VideoModel,
    build_video_model,
    load_encoder,
    load_base_model,
    load_video_model,
    require_vae,
    save_video_model,
)

DECODE_THREADS = 8  # JPEG decoding releases the GIL; threads keep the GPU fed


def _render_scenes(ws: Workspace, plan: Plan, device: torch.device) -> None:
    """Render (or reuse) every training scene's conditions at the training resolution and fps.

    Under torchrun each rank starts with its own share of the scenes, then passes over the rest,
    which the artifact lock makes it wait for and reuse, so all ranks end with every render.
    """
    info = init_distributed(device)
    order = plan.scenes[info.rank::info.world] + [s for i, s in enumerate(plan.scenes) if i % info.world != info.rank]
    height, width = plan.config.resolution
    for s in order:
        req = RenderRequest(dataset=str(plan.dataset.root), scene=s.name, resolution=f"{height}x{width}", lidar=False,
                            fps=float(plan.config.sampling.fps), previews=False, device=str(device))
        s.render = Path(run_render(ws, req)["path"])
        s.render_meta = json.loads((s.render / "frames.json").read_text())
        got = len(s.render_meta["frames"])
        if got != s.frames:
            raise RunFailure(f"{s.render}: {got} frames, expected {s.frames} for scene '{s.name}'; re-render it with --force")


def _stream_seed(seed: int, step: int, rank: int) -> int:
    """A well-mixed seed per (seed, step, rank): the randomness of a step does not depend on history."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _start_model(plan: Plan, seed: int) -> VideoModel:
    if plan.init is not None:
        model = load_video_model(plan.init, "--init", encoders=False)  # write() copies their folders
        require_vae(model, plan.init, "--init")
        # the frozen CLIP gives the first frames' features (i2v); the umT5 is used once, for the prompt
        image_encoder = load_encoder(plan.init, IMAGE_ENCODER_DIR, "--init") if plan.config.transformer.i2v else None
        # the resolved resolution / clip length / optimiser settings are what this run records
        return VideoModel(plan.config, model.transformer, model.vae, image_encoder=image_encoder)
    if plan.base:
        return load_base_model(plan.base, plan.config, "--base", seed)
    ui.warn("no --base or --init: training from random weights (tests, debugging); for real runs pass "
            f"--base {plan.config.base_model or 'a Wan2.1 diffusers folder'}")
    return build_video_model(plan.config, seed)


def training_prompt(plan: Plan, model: VideoModel, device: torch.device) -> torch.Tensor | None:
    """[1, text_len, text_dim]: the official (empty) prompt by the --init model's umT5 when it has
    one with its tokenizer, the prompt `generate` samples it with; else None (zero embeddings)."""
    if plan.prompt is None or plan.prompt.source != "umt5":
        return None
    return resolve_prompts(plan.prompt, plan.init, model, device)["prompt"]


def _carry_frozen_parts(init: Path | None, folder: Path) -> None:
    """The --init model's text / image encoders and tokenizer go with the fine-tuned model (copied
    as files: fine-tuning does not change them, and loading a full umT5 would cost 11 GB)."""
    if init is None:
        return
    for sub in (TEXT_ENCODER_DIR, IMAGE_ENCODER_DIR, TOKENIZER_DIR):
        if (init / sub).is_dir():
            shutil.copytree(init / sub, folder / sub)


def video_stage(ws: Workspace, plan: Plan, seed: int, device: torch.device) -> tuple[Stage, VideoModel]:
    """The shared trainer's Stage for the video transformer (the VAE stays frozen outside it)."""
    cfg, stride = plan.config, plan.clip_stride
    span = clip_span(plan.clip_frames, stride)
    model = _start_model(plan, seed)
    _render_scenes(ws, plan, device)
    info = init_distributed(device)
    vae = model.vae.to(device).eval().requires_grad_(False)
    image_encoder = None if model.image_encoder is None else model.image_encoder.to(device).eval().requires_grad_(False)
    prompt = training_prompt(plan, model, device)
    transformer = model.transformer
    cuda = device.type == "cuda"
    set_gradient_checkpointing(transformer, cuda)
    pool = ThreadPoolExecutor(min(DECODE_THREADS, os.cpu_count() or 1))
    clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")

    def load_clips(items: np.ndarray, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        videos, conds = [], []
        for i in items:
            s = plan.scenes[int(i)]
            start = clip_start(s.frames, span, gen)
            idx = list(range(start, start + span, stride))
            videos.append(camera_frames([s.images[j] for j in idx], cfg.resolution, pool))
            conds.append(condition_frames(s.render, cfg.multiview.views, idx, s.render_meta))
        return to_video_tensor(videos), to_video_tensor(conds)

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, index: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_stream_seed(seed, index, info.rank))
        videos, conds = load_clips(batch["items"], gen)  # [B, V, N, 3, H, W] in [0, 1]
        flow_batch = encode_training_batch(vae, videos, conds, cfg, prompt, image_encoder)
        if not hasattr(net, "config"):
            net.config = transformer.config  # DDP: the flow loss reads the wrapped model's view count
        result = finetune_step(net, opt, flow_batch, cfg, generator=gen, grad_clip=clip,
                               autocast_dtype=torch.bfloat16 if cuda else None)
        return torch.tensor(result.loss, device=device)

    stage = Stage(transformer, len(plan.scenes), lambda idx: {"items": idx}, step=step,
                  optimizer=lambda params: make_optimizer(transformer, cfg.optim, cfg.optim.lr))
    return stage, model


def run_finetune_video(ws: Workspace, req: FinetuneVideoRequest) -> dict:
    plan = plan_finetune(ws, req)
    cfg, settings = plan.config, plan.settings
    holder: dict[str, VideoModel] = {}

    def build_stage(device: torch.device):
        stage, model = video_stage(ws, plan, req.seed, device)
        holder["model"] = model
        return stage, lambda trained: {"transformer": trained}

    def write(w: ArtifactWriter, parts: dict[str, torch.nn.Module]) -> None:
        _carry_frozen_parts(plan.init, w.tmp)
        save_video_model(VideoModel(cfg, parts["transformer"], holder["model"].vae), w.tmp)

    request = {**dataclasses.asdict(req), "video_config": cfg.name, "resolved": {
        "config": cfg.to_dict(), "clip_frames": plan.clip_frames, "clip_stride": req.clip_stride,
        "scenes": [s.name for s in plan.scenes], "views": list(cfg.multiview.views)}}
    job = TrainingJob("finetune-video", "video", cfg, settings, plan.inputs, request, req.name, req.resume,
                      req.force, req.device, build_stage, kind=KIND, write=write)
    return run_training(ws, job)

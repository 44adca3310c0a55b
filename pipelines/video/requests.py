"""What the video commands ask for, as plain values: `finetune-video`, `generate` and
`evaluate video`. Each field's default is the command's default (`gdrive <command> --help` shows
it), declared here once. Light on purpose (no torch, no diffusers), so the help reads these
without loading the video stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..limits import DEFAULT_VIDEO_FRAMES as DEFAULT_FRAMES, FVD_CLIP_FRAMES
from ..runtime.train_request import TrainRequest

DEFAULT_CONFIG = "wan2.1-1.3b-t2v"  # the layout a T2V base (--base) widens into
METRICS = ("fid", "fvd")


@dataclass
class FinetuneVideoRequest(TrainRequest):
    video_config: str | None = None  # default: the --init model's, else DEFAULT_CONFIG
    base: str | None = None  # a Wan2.1 diffusers folder or hub id
    init: str | None = None  # a video model (name, id, 'latest' or folder) to continue
    split: str = "train"
    clip_frames: int | None = None  # default: config.optim.train_frames (official 37)
    clip_stride: int = 2
    resolution: str | None = None  # default: the config's (256x512)
    steps: int = 1000
    batch_size: int = 1
    lr: float | None = None  # default: config.optim.lr (official 2e-5)
    warmup: int | None = None  # default: config.optim.warmup_steps (official 100)
    grad_clip: float | None = None  # default: config.optim.grad_clip (official 0.05); 0 = off
    ckpt_every: int = 250
    ema: bool = False  # the official recipe keeps none


@dataclass
class GenerateRequest:
    dataset: str = "latest"
    scene: str | None = None  # None: the dataset's first scene
    traj: str = "straight"
    speed: float | None = None  # m/s for named trajectories; None: the logged speed at the start
    model: str | None = None  # world model; None: the shipped demo weights
    frames: int = DEFAULT_FRAMES
    video_model: str | None = None  # None: write the condition video
    resolution: str | None = None  # HEIGHTxWIDTH; None: the video model's, else 256x512
    steps: int | None = None  # None: the video model's (official 50)
    guidance: float | None = None  # None: the video model's (official 6.0); needs prompt embeddings
    chunk_frames: int | None = None  # None: the video model's (official 81)
    prompt_embeds: str | None = None  # safetensors with `prompt` (and optionally `negative`) [L, D]
    seed: int | None = None  # None: the video model's sampling seed (official 43)
    name: str | None = None
    device: str = "auto"
    force: bool = False  # recompute every stage
    world: str = "auto"  # the future occupancy: simulator (synthetic scenes) or model; auto picks


@dataclass
class VideoEvalRequest:
    real: Path
    generated: Path
    fid_weights: Path | None = None  # required for fid
    fvd_weights: Path | None = None  # required for fvd
    metrics: tuple[str, ...] = METRICS
    clip_frames: int = FVD_CLIP_FRAMES
    all_clips: bool = False
    frame_stride: int = 1
    unpaired: bool = False
    batch_size: int = 8
    device: str = "auto"

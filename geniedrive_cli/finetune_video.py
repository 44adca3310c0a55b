"""`gdrive finetune-video`: fine-tune the multi-view video model on rendered conditions and camera video."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..pipelines.video.requests import FinetuneVideoRequest
from .training import CkptEvery, Dataset, Ema, Force, Name, Recipe, Resume, Steps, run_training_command

REQUESTS = (FinetuneVideoRequest,)  # the options' defaults (shown by --help)


def command(
    dataset: Dataset = None,
    video_config: Annotated[Optional[str], typer.Option(help="Video-model config: wan2.1-1.3b-t2v (official sizes, text-only: what a T2V --base widens into) | wan2.1-1.3b (the released i2v + ref_conv layout, from --init) | debug | debug-i2v (tests). Default: the --init model's, else wan2.1-1.3b-t2v.")] = None,
    base: Annotated[Optional[str], typer.Option(help="Start from a base Wan2.1 (diffusers folder or hub id, e.g. Wan-AI/Wan2.1-T2V-1.3B-Diffusers); its patch embedding widens for the condition channels (default: none; without --base or --init the weights start random).")] = None,
    init: Annotated[Optional[str], typer.Option(help="Continue a video model instead: name, id, 'latest' or folder (default: none).")] = None,
    name: Name = None,
    steps: Steps = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Clips per step and process, each with all six views (official: 1).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate (default: the config's; official 2e-5).")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Linear warm-up steps, then constant (default: the config's; official 100).")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(help="Gradient-norm clip, 0 = off (default: the config's; official 0.05).")] = None,
    clip_frames: Annotated[Optional[int], typer.Option(help="Frames per training clip, 4k + 1 (default: the config's; official 37).")] = None,
    clip_stride: Annotated[Optional[int], typer.Option(help="Take every Nth 12 Hz frame into a clip (official: 2).")] = None,
    resolution: Annotated[Optional[str], typer.Option(help="HEIGHTxWIDTH per view (default: the config's, 256x512).")] = None,
    split: Annotated[Optional[str], typer.Option(help="Dataset split to train on.")] = None,
    ckpt_every: CkptEvery = None,
    ema: Ema = None,
    resume: Resume = None,
    config: Recipe = None,
    force: Force = None,
) -> None:
    """Fine-tune the multi-view video model: conditions from `gdrive render` of each training scene
    (made or reused here), targets from the dataset's camera images (nuScenes samples/ and sweeps/).
    Flow matching, AdamW, bf16 and gradient checkpointing on CUDA; resumable checkpoints. Many GPUs:
    torchrun --nproc_per_node N -m geniedrive.cli.app finetune-video ...

    Example: gdrive finetune-video --dataset nuscenes-trainval --base Wan-AI/Wan2.1-T2V-1.3B-Diffusers --steps 20000 --name video-nus
    """
    flags = {k: v for k, v in locals().items() if k != "config"}  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.video.finetune_stage import run_finetune_video

    run_training_command("finetune-video", FinetuneVideoRequest, run_finetune_video, flags, config)

"""`gdrive train-forecaster`: train the control-conditioned forecaster (predict, then e2e and/or fuse)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..pipelines.occworld.requests import TrainForecasterRequest
from .training import CkptEvery, Dataset, Ema, Force, Name, Recipe, Resume, Steps, ValEvery, run_training_command

REQUESTS = (TrainForecasterRequest,)  # the options' defaults (shown by --help)


def command(
    stage: Annotated[Optional[str], typer.Option(help="predict (VAE frozen, latent MSE) | e2e (VAE unfrozen, CE + Lovász) | fuse (only the observation-fusion head, CE + Lovász).")] = None,
    dataset: Dataset = None,
    init: Annotated[Optional[str], typer.Option(help="Model to start from: a train-vae model (predict) or a predict/e2e model (e2e, fuse); name, id, 'latest' or folder.")] = None,
    name: Name = None,
    steps: Steps = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Windows per step and process (official: 3).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate (official: 5e-5).")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay (official: 0.01).")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(help="Gradient-norm clip, 0 = off (official: 5).")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Linear warm-up steps (official: 50).")] = None,
    motion_prior: Annotated[Optional[str], typer.Option(help="predict stage: none (official) | warp (start each step from the ego-warped latent). Default: the --init model's config.")] = None,
    future: Annotated[Optional[int], typer.Option(help="predict/e2e: keyframes forecast per training window (official: 6 = 3 s). Above 6 the horizon grows from 6 to this over the first half of the steps (a curriculum for long rollouts).")] = None,
    val_every: ValEvery = None,
    val_windows: Annotated[Optional[int], typer.Option(help="Validation windows per pass.")] = None,
    ckpt_every: CkptEvery = None,
    ema: Ema = None,
    resume: Resume = None,
    config: Recipe = None,
    force: Force = None,
) -> None:
    """Train the forecaster with scheduled sampling. Many GPUs: torchrun --nproc_per_node N -m geniedrive.cli.app train-forecaster ...

    Example: gdrive train-forecaster --stage predict --dataset demo --init vae-small --steps 2000 --name wm-small
    """
    flags = {k: v for k, v in locals().items() if k != "config"}  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.occworld.train_forecaster import run_train_forecaster

    run_training_command("train-forecaster", TrainForecasterRequest, run_train_forecaster, flags, config)

"""`gdrive train-vae`: train the tri-plane VAE on a dataset."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..pipelines.occworld.requests import TrainVAERequest
from .training import CkptEvery, Dataset, Ema, Force, Name, Recipe, Resume, Steps, ValEvery, run_training_command

REQUESTS = (TrainVAERequest,)  # the options' defaults (shown by --help)


def command(
    dataset: Dataset = None,
    model_config: Annotated[Optional[str], typer.Option(help="paper (official sizes) | small (CPU) | debug.")] = None,
    name: Name = None,
    steps: Steps = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Frames per step and process.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (official: 1e-4).")] = None,
    val_every: ValEvery = None,
    ckpt_every: CkptEvery = None,
    ema: Ema = None,
    resume: Resume = None,
    config: Recipe = None,
    force: Force = None,
) -> None:
    """Train the tri-plane VAE (CE + Lovász + KL). Many GPUs: torchrun --nproc_per_node N -m geniedrive.cli.app train-vae ...

    Example: gdrive train-vae --dataset demo --model-config small --steps 2000 --name vae-small
    """
    flags = {k: v for k, v in locals().items() if k != "config"}  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.occworld.train_vae import run_train_vae

    run_training_command("train-vae", TrainVAERequest, run_train_vae, flags, config)

"""`gdrive train-forecaster`: train the control-conditioned forecaster (predict, then e2e)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from geniedrive_cli.config_file import load_recipe, merge
from geniedrive_cli.options import emit, state
from pipelines.console import ui
from pipelines.occworld.train_forecaster import TrainForecasterRequest, run_train_forecaster
from pipelines.store import Workspace

DEFAULTS = {"dataset": "latest", "stage": "predict", "init": "latest", "name": None, "steps": 1000, "batch_size": 1,
            "lr": 5e-5, "weight_decay": 0.01, "grad_clip": 5.0, "warmup": 50, "val_every": 0, "val_windows": 4,
            "ckpt_every": 100, "ema": True, "resume": False, "force": False}


def command(
    stage: Annotated[Optional[str], typer.Option(help="predict (VAE frozen, latent MSE) | e2e (VAE unfrozen, CE + Lovász).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest'.")] = None,
    init: Annotated[Optional[str], typer.Option(help="Model to start from: a train-vae model (predict) or a predict model (e2e); name, id, 'latest' or folder.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name in the workspace.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimiser steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Windows per step and process (official: 3).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate (official: 5e-5).")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay (official: 0.01).")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(help="Gradient-norm clip, 0 = off (official: 5).")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Linear warm-up steps (official: 50).")] = None,
    val_every: Annotated[Optional[int], typer.Option(help="Validate every N steps (0: at the end).")] = None,
    val_windows: Annotated[Optional[int], typer.Option(help="Validation windows per pass.")] = None,
    ckpt_every: Annotated[Optional[int], typer.Option(help="Checkpoint every N steps.")] = None,
    ema: Annotated[Optional[bool], typer.Option("--ema/--no-ema", help="Keep and publish EMA weights.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run of this --name from its last checkpoint.")] = False,
    config: Annotated[Optional[str], typer.Option(help="YAML recipe; flags override it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if the same model exists.")] = False,
) -> None:
    """Train the forecaster with scheduled sampling. Many GPUs: torchrun --nproc_per_node N -m geniedrive_cli.app train-forecaster ...

    Example: gdrive train-forecaster --stage predict --dataset demo --init vae-small --steps 2000 --name wm-small
    """
    flags = dict(stage=stage, dataset=dataset, init=init, name=name, steps=steps, batch_size=batch_size, lr=lr,
                 weight_decay=weight_decay, grad_clip=grad_clip, warmup=warmup, val_every=val_every,
                 val_windows=val_windows, ckpt_every=ckpt_every, ema=ema, resume=resume or None, force=force or None)
    cfg = merge(flags, load_recipe(config, set(DEFAULTS)), DEFAULTS)
    req = TrainForecasterRequest(**cfg, seed=state.seed or 0, device=state.device)
    out = run_train_forecaster(Workspace.at(state.workspace), req)
    if out.get("metrics"):
        ui.info(", ".join(f"{k} {v:.2f}" for k, v in out["metrics"].items()))
    emit({"command": "train-forecaster", "kind": "model", **out})

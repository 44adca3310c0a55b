"""`gdrive train-vae`: train the tri-plane VAE on a dataset."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from geniedrive_cli.config_file import load_recipe, merge
from geniedrive_cli.options import emit, state
from pipelines.console import ui
from pipelines.occworld.train_vae import TrainVAERequest, run_train_vae
from pipelines.store import Workspace

DEFAULTS = {"dataset": "latest", "model_config": "paper", "name": None, "steps": 1000, "batch_size": 2, "lr": 1e-4,
            "val_every": 0, "ckpt_every": 100, "ema": True, "resume": False, "force": False}


def command(
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest'.")] = None,
    model_config: Annotated[Optional[str], typer.Option(help="paper (official sizes) | small (CPU) | debug.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name in the workspace.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimiser steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Frames per step and process.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (official: 1e-4).")] = None,
    val_every: Annotated[Optional[int], typer.Option(help="Validate every N steps (0: at the end).")] = None,
    ckpt_every: Annotated[Optional[int], typer.Option(help="Checkpoint every N steps.")] = None,
    ema: Annotated[Optional[bool], typer.Option("--ema/--no-ema", help="Keep and publish EMA weights.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run of this --name from its last checkpoint.")] = False,
    config: Annotated[Optional[str], typer.Option(help="YAML recipe; flags override it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if the same model exists.")] = False,
) -> None:
    """Train the tri-plane VAE (CE + Lovász + KL). Many GPUs: torchrun --nproc_per_node N -m geniedrive_cli.app train-vae ...

    Example: gdrive train-vae --dataset demo --model-config small --steps 2000 --name vae-small
    """
    flags = dict(dataset=dataset, model_config=model_config, name=name, steps=steps, batch_size=batch_size, lr=lr,
                 val_every=val_every, ckpt_every=ckpt_every, ema=ema, resume=resume or None, force=force or None)
    cfg = merge(flags, load_recipe(config, set(DEFAULTS)), DEFAULTS)
    req = TrainVAERequest(**cfg, seed=state.seed or 0, device=state.device)
    out = run_train_vae(Workspace.at(state.workspace), req)
    if out.get("metrics"):
        ui.info(", ".join(f"{k} {v:.2f}" for k, v in out["metrics"].items()))
    emit({"command": "train-vae", "kind": "model", **out})

"""What the training commands share: their common options (declared once here, their defaults
once in `runtime.train_request.TrainRequest`), and running a training request."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.store import Workspace

Dataset = Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest'.")]
Name = Annotated[Optional[str], typer.Option(help="Model name in the workspace (default: <stage>-<model config>-<id>, e.g. vae-small-3f2a1c).")]
Steps = Annotated[Optional[int], typer.Option(help="Optimiser steps.")]
ValEvery = Annotated[Optional[int], typer.Option(help="Validate every N steps (0: at the end).")]
CkptEvery = Annotated[Optional[int], typer.Option(help="Checkpoint every N steps.")]
Ema = Annotated[Optional[bool], typer.Option("--ema/--no-ema", help="Keep and publish EMA weights.")]
Resume = Annotated[Optional[bool], typer.Option("--resume", help="Continue the run of this --name from its last checkpoint.")]
Recipe = Annotated[Optional[str], typer.Option(help="YAML recipe of these options (default: none); flags override it.")]
Force = Annotated[Optional[bool], typer.Option("--force", help="Retrain even if the same model exists.")]


def run_training_command(command: str, request_cls: type, run: Callable[[Workspace, Any], dict], flags: dict,
                         recipe: str | None) -> None:
    """Resolve `flags` (None = not given) over the recipe and the request's defaults, train, report."""
    req = resolve_request(request_cls, flags, recipe, seed=state.seed or 0, device=state.device)
    out = run(Workspace.at(state.workspace), req)
    if out.get("metrics"):
        ui.info(", ".join(f"{k} {v:.2f}" for k, v in out["metrics"].items()))
    emit({"command": command, "kind": "model", **out})

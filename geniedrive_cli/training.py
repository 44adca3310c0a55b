"""What the training commands share: their common options, and flag > recipe > default resolution
into a request whose dataclass defaults are the command's defaults."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Optional

import typer

from .config_file import load_recipe, merge, option_types, request_defaults
from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.store import Workspace

Dataset = Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest'.")]
Name = Annotated[Optional[str], typer.Option(help="Model name in the workspace.")]
Steps = Annotated[Optional[int], typer.Option(help="Optimiser steps.")]
ValEvery = Annotated[Optional[int], typer.Option(help="Validate every N steps (0: at the end).")]
CkptEvery = Annotated[Optional[int], typer.Option(help="Checkpoint every N steps.")]
Ema = Annotated[Optional[bool], typer.Option("--ema/--no-ema", help="Keep and publish EMA weights.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run of this --name from its last checkpoint.")]
Recipe = Annotated[Optional[str], typer.Option(help="YAML recipe; flags override it.")]
Force = Annotated[bool, typer.Option("--force", help="Retrain even if the same model exists.")]

# Set from the global options, not from flags or recipes.
_GLOBAL_FIELDS = ("seed", "device")


def run_training_command(command: str, request_cls: type, run: Callable[[Workspace, Any], dict], flags: dict,
                         recipe: str | None) -> None:
    """Resolve `flags` (None = not given) over the recipe and the request's defaults, train, report.

    `flags` are the command's own parameters by name (`locals()` at its start, less the recipe), so
    each option is written once in the Typer signature and its default once in the request dataclass."""
    defaults = request_defaults(request_cls, skip=_GLOBAL_FIELDS)
    flags = {**flags, "resume": flags.get("resume") or None, "force": flags.get("force") or None}
    types = option_types(request_cls)
    cfg = merge(flags, load_recipe(recipe, {k: types[k] for k in defaults}), defaults)
    out = run(Workspace.at(state.workspace), request_cls(**cfg, seed=state.seed or 0, device=state.device))
    if out.get("metrics"):
        ui.info(", ".join(f"{k} {v:.2f}" for k, v in out["metrics"].items()))
    emit({"command": command, "kind": "model", **out})

"""`gdrive model-info`: the parameter count of each part of a named world-model config."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import emit
from ..pipelines.console import ui
from ..pipelines.occworld.configs import CONFIGS, get_config


def command(
    model_config: Annotated[str, typer.Option(help=f"Named config: {', '.join(CONFIGS)}.")] = "paper",
) -> None:
    """Print the parameter count of each part of a world-model config.

    Example: gdrive model-info --model-config paper
    """
    from ..pipelines.occworld.params import parameter_report

    cfg = get_config(model_config)
    report = parameter_report(cfg)
    rows = [["VAE", part, f"{n:,}"] for part, n in report["vae"].items()]
    rows += [["forecaster", part, f"{n:,}"] for part, n in report["forecaster"].items()]
    rows.append(["world model", "total", f"{report['total']['parameters']:,}"])
    ui.table(f"world model '{cfg.name}' parameters", ["model", "part", "parameters"], rows)
    emit({"command": "model-info", "config": cfg.name, "parameters": report})

"""`gdrive evaluate occ`: occupancy forecasting metrics, baselines and control adherence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from geniedrive_cli.options import emit, state
from pipelines.console import ui
from pipelines.errors import BadInput
from pipelines.occworld.evaluate import HORIZONS
from pipelines.occworld.evaluate_occ import EvaluateOccRequest, report_rows, run_evaluate_occ
from pipelines.store import Workspace
from pipelines.store.atomic import write_text_atomic

TARGETS = ("occ",)


def command(
    target: Annotated[str, typer.Argument(help="What to evaluate: occ (occupancy forecasting).")],
    dataset: Annotated[str, typer.Option(help="Dataset name, id or 'latest'.")] = "latest",
    model: Annotated[Optional[str], typer.Option(help="World model (name, id, 'latest' or folder); default: the demo weights.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only scenes of this split (default: all).")] = None,
    max_windows: Annotated[Optional[int], typer.Option(help="Evaluate this many windows, evenly spread (default: all).")] = None,
    adherence: Annotated[bool, typer.Option("--adherence/--no-adherence", help="Register each forecast to the current frame and compare the ego motion with the command.")] = True,
    out: Annotated[Optional[str], typer.Option(help="Also write the report as JSON to this file.")] = None,
) -> None:
    """Score occupancy forecasts (both mIoU conventions, per horizon) beside copy-last and ego-warp.

    Example: gdrive evaluate occ --dataset heldout --model wm-small --max-windows 20
    """
    if target not in TARGETS:
        raise BadInput(f"evaluate '{target}': unknown target; choose one of {', '.join(TARGETS)}")
    if out is not None and not Path(out).parent.is_dir():
        raise BadInput(f"--out {out}: folder {Path(out).parent} does not exist; create it or pick another path")
    res = run_evaluate_occ(Workspace.at(state.workspace), EvaluateOccRequest(dataset, model, split, max_windows, adherence, state.device))
    ui.table(f"occupancy forecasting, {res['windows']} windows (mIoU drop-zero / unseen-one, IoU)",
             ["horizon", "method", "mIoU drop_zero", "mIoU unseen_one", "IoU"], report_rows(res))
    if "adherence" in res:
        ui.table("control adherence (ego motion recovered from the forecast vs commanded)", ["horizon", "translation m", "yaw °"],
                 [[h, f"{res['adherence'][h]['translation_m']:.2f}", f"{res['adherence'][h]['yaw_deg']:.2f}"] for h, _ in HORIZONS])
    t = res["timing"]
    ui.info(f"{t['fps_forecast']:.2f} forecast frames/s, {t['fps_peer_scope']:.2f} in the peers' scope (decode excluded) on {t['device']}")
    if out is not None:
        write_text_atomic(Path(out), json.dumps(res, indent=1))
    emit({"command": "evaluate", "target": target, **res})

"""`gdrive list`: what the workspace holds (datasets, their scenes, models and outputs)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.store import Workspace
from ..pipelines.store.listing import WHAT, list_workspace


def command(
    what: Annotated[str, typer.Argument(help=f"One of: {', '.join(WHAT)}.")] = "datasets",
    dataset: Annotated[str, typer.Option(help="scenes: the dataset (name, id or 'latest').")] = "latest",
) -> None:
    """List the workspace's datasets, a dataset's scenes, models, forecasts, renders, generations or
    video models (names, ids, what each was made from); --json for scripts.

    Example: gdrive list scenes --dataset demo
    """
    if what != "scenes" and dataset != "latest":
        raise typer.BadParameter("only 'gdrive list scenes' takes --dataset", param_hint="--dataset")
    ws = Workspace.at(state.workspace)
    out = list_workspace(ws, what, dataset)
    items = out["items"]
    if state.json:  # stdout holds the one JSON object
        emit({"command": "list", **out})
        return
    if not items:
        ui.info(f"no {what} in {ws.root}" if what != "scenes"
                else f"dataset '{out['dataset']}' has no scenes")
    elif what == "scenes":
        ui.table(f"scenes of dataset '{out['dataset']}'", ["scene", "split", "frames", "instances"],
                 [[s["name"], s["split"], s["frames"], s["instances"]] for s in items], stdout=True)
    else:
        keys = [k for k in items[0] if k not in ("name", "id", "created", "path")]
        ui.table(what, ["name", "id", "created", *keys],
                 [[i["name"], i["id"][:12], str(i["created"])[:19], *("" if i.get(k) is None else i[k] for k in keys)]
                  for i in items], stdout=True)

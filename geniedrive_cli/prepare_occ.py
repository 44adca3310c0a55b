"""`gdrive prepare-occ`: make a dataset of 4D semantic occupancy from a source."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.data.prepare_request import PrepareRequest
from ..pipelines.store import Workspace

REQUESTS = (PrepareRequest,)  # the options' defaults (shown by --help)


def command(
    source: Annotated[Optional[str], typer.Option(help="synthetic (embedded) | nuscenes | occ-folder.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Dataset name in the workspace (default: <source>-<hash>).")] = None,
    scenes: Annotated[Optional[int], typer.Option(help="synthetic: number of scenes (default 4); others: the first N (default: all).")] = None,
    frames: Annotated[Optional[int], typer.Option(help="synthetic: keyframes per scene at 2 Hz.")] = None,
    dataroot: Annotated[Optional[str], typer.Option(help="nuscenes / occ-folder: the source folder (required there).")] = None,
    version: Annotated[Optional[str], typer.Option(help="nuscenes: table version folder.")] = None,
    occ_root: Annotated[Optional[str], typer.Option(help="nuscenes: folder holding Occ3D gts/ (default: --dataroot).")] = None,
    previews: Annotated[Optional[bool], typer.Option("--previews/--no-previews", help="Write top-down PNG/MP4 previews.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: one per core).")] = None,
    config: Annotated[Optional[str], typer.Option(help="YAML recipe of these options (default: none); flags override it.")] = None,
    force: Annotated[Optional[bool], typer.Option("--force", help="Recompute even if the same dataset exists.")] = None,
) -> None:
    """Prepare 4D semantic occupancy (Occ3D layout) from a synthetic world, nuScenes or an export.

    Example: gdrive prepare-occ --source synthetic --scenes 4 --frames 40 --seed 0 --name demo
    """
    flags = {k: v for k, v in locals().items() if k != "config"}  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.data.occ3d import CLASS_NAMES
    from ..pipelines.data.prepare import prepare_occ

    req = resolve_request(PrepareRequest, {**flags, "seed": state.seed}, config)  # a recipe may give the seed
    ws = Workspace.at(state.workspace)
    result, summary = prepare_occ(ws, req)
    art = result.artifact
    cmds = summary["commands"]
    present = [n for n, v in summary["class_voxels"].items() if v > 0 and n != "free"]
    ui.table(
        f"dataset {art.name}",
        ["scenes", "frames", "splits", "classes", "commands (right/left/straight)", "instances"],
        [[summary["scenes"], summary["frames"], ", ".join(f"{k} {v}" for k, v in summary["splits"].items()),
          f"{summary['classes_present']}/{len(CLASS_NAMES) - 1}",
          f"{cmds['right']}/{cmds['left']}/{cmds['straight']}", summary["instances"]]],
    )
    if not state.quiet:
        ui.info(f"classes present: {', '.join(present)}")
        if (art.path / "previews").is_dir():
            ui.info(f"previews: {art.path / 'previews'}")
    emit({"command": "prepare-occ", "kind": "dataset", "name": art.name, "id": art.id, "path": str(art.path),
          "reused": result.reused, "summary": summary})

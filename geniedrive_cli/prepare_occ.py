"""`gdrive prepare-occ`: make a dataset of 4D semantic occupancy from a source."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .config_file import load_recipe, merge, option_types, request_defaults
from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.store import Workspace

def command(
    source: Annotated[Optional[str], typer.Option(help="synthetic (default, embedded) | nuscenes | occ-folder.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Dataset name in the workspace (default: <source>-<hash>).")] = None,
    scenes: Annotated[Optional[int], typer.Option(help="synthetic: number of scenes (default 4); others: the first N.")] = None,
    frames: Annotated[Optional[int], typer.Option(help="synthetic: keyframes per scene at 2 Hz (default 40).")] = None,
    dataroot: Annotated[Optional[str], typer.Option(help="nuscenes / occ-folder: the source folder.")] = None,
    version: Annotated[Optional[str], typer.Option(help="nuscenes: table version folder (default v1.0-trainval).")] = None,
    occ_root: Annotated[Optional[str], typer.Option(help="nuscenes: folder holding Occ3D gts/ (default: --dataroot).")] = None,
    previews: Annotated[Optional[bool], typer.Option("--previews/--no-previews", help="Write top-down PNG/MP4 previews.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: one per core).")] = None,
    config: Annotated[Optional[str], typer.Option(help="YAML recipe; flags override it.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute even if the same dataset exists.")] = False,
) -> None:
    """Prepare 4D semantic occupancy (Occ3D layout) from a synthetic world, nuScenes or an export.

    Example: gdrive prepare-occ --source synthetic --scenes 4 --frames 40 --seed 0 --name demo
    """
    flags = {k: v for k, v in locals().items() if k != "config"}  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.data.occ3d import CLASS_NAMES
    from ..pipelines.data.prepare import PrepareRequest, prepare_occ

    flags.update(force=force or None, seed=state.seed)
    defaults, types = request_defaults(PrepareRequest), option_types(PrepareRequest)
    cfg = merge(flags, load_recipe(config, {k: types[k] for k in defaults}), defaults)
    req = PrepareRequest(**cfg)
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

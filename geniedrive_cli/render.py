"""`gdrive render`: six-camera conditions and LiDAR sweeps from occupancy."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.sensors.render_request import RenderRequest
from ..pipelines.store import Workspace

REQUESTS = (RenderRequest,)  # the options' defaults (shown by --help)


def command(
    scene: Annotated[Optional[str], typer.Option(help="Scene of --dataset to render (e.g. scene-0000; default: none, then give --occ).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest' (with --scene; default: latest).")] = None,
    occ: Annotated[Optional[str], typer.Option(help="Instead of a dataset scene: a folder in Occ3D layout (gts/<scene>/<token>/labels.npz) or a forecast name (default: none, render --scene).")] = None,
    rig: Annotated[Optional[str], typer.Option(help="Rig JSON file (default: the scene's rig, the folder's rig.json, or the nuScenes rig).")] = None,
    cameras: Annotated[Optional[str], typer.Option(help="Comma-separated camera names (default: all of the rig's).")] = None,
    resolution: Annotated[Optional[str], typer.Option(help="HEIGHTxWIDTH per camera: 256x512 (video) or 450x800 (official conditions).")] = None,
    lidar: Annotated[Optional[bool], typer.Option("--lidar/--no-lidar", help="Also cast the rig's LiDAR (nuScenes .pcd.bin + labels).")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Output rate; frames between the 2 Hz keyframes come from interpolated ego poses (12 = 6 per keyframe).")] = None,
    repeat: Annotated[Optional[int], typer.Option(help="Instead of interpolating, repeat each keyframe N times (official: 6; default: interpolate at --fps).")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Keyframe range a:b (default: all).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Render name in the workspace (default: <dataset>-<scene>-<HxW>-<id>).")] = None,
    previews: Annotated[Optional[bool], typer.Option("--previews/--no-previews", help="Write preview.png, cameras.mp4 and the LiDAR previews.")] = None,
    force: Annotated[Optional[bool], typer.Option("--force", help="Recompute even if the same render exists.")] = None,
) -> None:
    """Render camera conditions (labels, depth, alpha per view) and LiDAR sweeps from occupancy.

    Example: gdrive render --dataset demo --scene scene-0000 --resolution 256x512 --fps 12
    """
    flags = dict(locals())  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.sensors.render import run_render

    req = resolve_request(RenderRequest, flags, device=state.device)
    emit({"command": "render", "kind": "render", **run_render(Workspace.at(state.workspace), req)})

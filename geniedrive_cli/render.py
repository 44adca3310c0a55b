"""`gdrive render`: six-camera conditions and LiDAR sweeps from occupancy."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import emit, state
from ..pipelines.store import Workspace


def command(
    scene: Annotated[Optional[str], typer.Option(help="Scene of --dataset to render (e.g. scene-0000).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest' (with --scene).")] = None,
    occ: Annotated[Optional[str], typer.Option(help="Instead of a dataset scene: a folder in Occ3D layout (gts/<scene>/<token>/labels.npz) or a forecast name.")] = None,
    rig: Annotated[Optional[str], typer.Option(help="Rig JSON file (default: the scene's rig, the folder's rig.json, or the nuScenes rig).")] = None,
    cameras: Annotated[Optional[str], typer.Option(help="Comma-separated camera names (default: all of the rig's).")] = None,
    resolution: Annotated[str, typer.Option(help="HEIGHTxWIDTH per camera: 256x512 (video) or 450x800 (official conditions).")] = "256x512",
    lidar: Annotated[bool, typer.Option("--lidar/--no-lidar", help="Also cast the rig's LiDAR (nuScenes .pcd.bin + labels).")] = True,
    fps: Annotated[float, typer.Option(help="Output rate; frames between the 2 Hz keyframes come from interpolated ego poses (12 = 6 per keyframe).")] = 12.0,
    repeat: Annotated[Optional[int], typer.Option(help="Instead of interpolating, repeat each keyframe N times (official: 6).")] = None,
    frames: Annotated[Optional[str], typer.Option(help="Keyframe range a:b (default: all).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Render name in the workspace.")] = None,
    previews: Annotated[bool, typer.Option("--previews/--no-previews", help="Write preview.png, cameras.mp4 and the LiDAR previews.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Recompute even if the same render exists.")] = False,
) -> None:
    """Render camera conditions (labels, depth, alpha per view) and LiDAR sweeps from occupancy.

    Example: gdrive render --dataset demo --scene scene-0000 --resolution 256x512 --fps 12
    """
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.sensors.render import RenderRequest, run_render

    req = RenderRequest(dataset=dataset, scene=scene, occ=occ, rig=rig, cameras=cameras, resolution=resolution,
                        lidar=lidar, fps=fps, repeat=repeat, frames=frames, name=name, previews=previews,
                        device=state.device, force=force)
    emit({"command": "render", "kind": "render", **run_render(Workspace.at(state.workspace), req)})

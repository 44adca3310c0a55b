"""`gdrive forecast`: future occupancy of a scene under a trajectory."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.occworld.requests import ForecastRequest
from ..pipelines.store import Workspace

REQUESTS = (ForecastRequest,)  # the options' defaults (shown by --help)


def command(
    scene: Annotated[str, typer.Option(help="Scene name in the dataset (e.g. scene-0000).")],
    traj: Annotated[Optional[str], typer.Option(help="straight | turn_left | turn_right | stop | lane_change_left | lane_change_right (on synthetic scenes along the road graph: the next junction's exit, the lane, the lead vehicle) | fixed_<name> (the same as fixed shapes: a 10 m radius arc, a 3 s lane shift) | gt | a waypoint file (.csv/.json: t (s), x, y (m) in the start ego frame, optional yaw_deg in degrees counter-clockwise from forward).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest'.")] = None,
    model: Annotated[Optional[str], typer.Option(help="World model (name, id, 'latest' or folder); default: the shipped demo weights.")] = None,
    frame: Annotated[Optional[int], typer.Option(help="Start keyframe index (default 3: the first with 3 past frames).")] = None,
    horizon: Annotated[Optional[int], typer.Option(help="Future keyframes at 2 Hz, any number (default 6 = 3 s; a waypoint file: its span).")] = None,
    speed: Annotated[Optional[float], typer.Option(help="m/s for named trajectories (default: the logged speed at the start).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Forecast name in the workspace (default: <dataset>-<scene>-<trajectory>-<id>).")] = None,
    previews: Annotated[Optional[bool], typer.Option("--previews/--no-previews", help="Write the top-down preview.mp4.")] = None,
    adherence: Annotated[Optional[bool], typer.Option("--adherence/--no-adherence", help="Recover the ego motion from each forecast frame and compare it with the command.")] = None,
    world: Annotated[Optional[str], typer.Option(help="model (the world model forecasts) | simulator (synthetic scenes: the scene re-simulated along the trajectory, its ground truth) | auto (simulator where there is one).")] = None,
    force: Annotated[Optional[bool], typer.Option("--force", help="Recompute even if the same forecast exists.")] = None,
) -> None:
    """Forecast the scene's occupancy under a trajectory (Occ3D layout + frames.json + preview.mp4).

    Example: gdrive forecast --scene scene-0000 --traj turn_left
    """
    flags = dict(locals())  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.occworld.forecast import run_forecast

    req = resolve_request(ForecastRequest, flags, device=state.device)
    out = run_forecast(Workspace.at(state.workspace), req)
    if out.get("adherence_last"):
        a = out["adherence_last"]
        ui.info(f"control adherence at the last frame: {a['translation_m']:.2f} m, {a['yaw_deg']:.1f}° from the commanded pose")
    emit({"command": "forecast", "kind": "forecast", **out})

"""`gdrive generate`: multi-view driving video, forecast -> render -> video (rollout)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.console import ui
from ..pipelines.store import Workspace
from ..pipelines.video.requests import GenerateRequest

REQUESTS = (GenerateRequest,)  # the options' defaults (shown by --help)

CONDITIONS_NOTE = "no --video-model: wrote the condition video (colourised semantics shaded by depth)"


def command(
    scene: Annotated[Optional[str], typer.Option(help="Scene of the dataset (default: its first scene).")] = None,
    traj: Annotated[Optional[str], typer.Option(help="straight | turn_left | turn_right | stop | lane_change_left | lane_change_right (along the road on synthetic scenes) | fixed_<name> | gt | a waypoint file (.csv/.json), as for `gdrive forecast`.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name, id or 'latest'.")] = None,
    frames: Annotated[Optional[int], typer.Option(help="Video frames at 12 fps, 4k + 1 (the default is 20 s: three 81-frame rollout rounds); the forecast covers them with ceil((frames - 1) / 6) keyframes at 2 Hz.")] = None,
    video_model: Annotated[Optional[str], typer.Option(help="Video model (folder from `gdrive finetune-video`, or its name, id or 'latest'). Without one (the default), the condition video is written.")] = None,
    resolution: Annotated[Optional[str], typer.Option(help="HEIGHTxWIDTH per view (default: the video model's, else 256x512); with a video model, multiples of its VAE stride x patch size (16 for Wan2.1).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Sampling steps per rollout round (default: the video model's; official 50).")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Classifier-free guidance scale (default: the video model's; official 6.0); applies when there is a prompt (the model's umT5 or --prompt-embeds).")] = None,
    chunk_frames: Annotated[Optional[int], typer.Option(help="Frames per rollout round, 4k + 1 (default: the video model's; official 81); the last frame of each view seeds the next round.")] = None,
    prompt_embeds: Annotated[Optional[str], typer.Option(help="Precomputed prompt embeddings: a safetensors file with 'prompt' [L, D] and optionally 'negative' (default: the official empty prompt and Wan's negative prompt by the model's umT5 when it has one, else none and no guidance).")] = None,
    model: Annotated[Optional[str], typer.Option(help="World model for the forecast (name, id, 'latest' or folder); default: the shipped demo weights.")] = None,
    speed: Annotated[Optional[float], typer.Option(help="m/s for named trajectories (default: the logged speed at the start).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Generation name in the workspace (default: <dataset>-<scene>-<trajectory>-<frames>f-<id>).")] = None,
    world: Annotated[Optional[str], typer.Option(help="Where the future occupancy comes from: auto (the simulator for synthetic scenes, the world model elsewhere) | simulator | model.")] = None,
    force: Annotated[Optional[bool], typer.Option("--force", help="Recompute every stage (forecast, render, video) even if cached.")] = None,
) -> None:
    """Generate multi-view driving video: forecast the scene's occupancy under a trajectory, render it
    into the six cameras (and LiDAR) at 12 fps, and turn the rendered conditions into video with a
    video model, chunk by chunk (rollout). Writes generations/<name>/ with CAM_*.mp4, grid.mp4 and
    run.json (the run's occupancy, forecast, render and LiDAR). The sampling seed is the global
    --seed (default: the video model's, official 43).

    Example: gdrive generate --scene scene-0000 --traj turn_left --frames 241 --video-model video-nus
    """
    flags = dict(locals())  # every option by name; None = not given
    # the pipeline is imported when the command runs: `gdrive --help` and `--version` stay fast
    from ..pipelines.video.generate import run_generate

    req = resolve_request(GenerateRequest, flags, seed=state.seed, device=state.device)
    out = run_generate(Workspace.at(state.workspace), req)
    if out["video"] == "conditions":
        ui.info(CONDITIONS_NOTE)
        out["note"] = CONDITIONS_NOTE
    h, w = out["resolution"]
    ui.info(f"{out['frames']} frames x {len(out['views'])} views at {h}x{w}, {out['fps']:g} fps: "
            f"{', '.join(out['files'])} in {out['path']}")
    keyframes = out["occupancy"]  # the current keyframe, then the forecast's (run.json lists their files)
    ui.info(f"occupancy: {len(keyframes)} keyframes, the current one then forecast '{out['forecast']['name']}' "
            f"({out['forecast']['path']}); LiDAR: {out['render']['lidar']}")
    emit({"command": "generate", "kind": "generation", **out})

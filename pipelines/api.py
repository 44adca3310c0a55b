"""The Python API: gdrive's stages as functions on values, for notebooks and scripts.

    import geniedrive as gd

    wm = gd.WorldModel.from_pretrained(gd.DEMO_MODEL)           # or a models/<name> folder
    scene = gd.open_dataset("latest", workspace="ws").scene("scene-0000")
    fc = gd.forecast(wm, scene, start=3, traj="turn_left")      # Forecast: labels [H, 200, 200, 16]
    seq = fc.sequence(with_current=True)                        # OccupancySequence: current + future
    for frame in gd.render(seq, resolution=(256, 512)): ...     # RenderedFrame: cameras, LiDAR
    video = gd.generate(seq)                                    # Video: frames [6, N, H, W, 3]

The `gdrive` commands are cached wrappers over these same functions: `run_forecast` writes what
`forecast` returns, `run_render` what `render` yields, and `run_generate` renders the same
current-plus-forecast sequence. Nothing here writes files except `open_dataset`, which builds the
embedded demo world when the workspace has no dataset (as the commands do). Errors are typed:
`BadInput` (what the commands exit 2 for) and its `TrajectoryTooShort`; `RunFailure` (exit 1).
"""

from __future__ import annotations

from .data.dataset import OccDataset, Scene
from .data.demo_world import open_dataset
from .data.sequence import KeyframeGrids, OccupancySequence
from .errors import BadInput, GdriveError, RunFailure, TrajectoryTooShort
from .occworld.forecast import DEMO_MODEL, Forecast, Trajectory, forecast, plan_trajectory
from .occworld.world_model import WorldModel
from .sensors.render import RenderedFrame, Rendering, render
from .video.generate import Video, generate

__all__ = [
    "BadInput", "DEMO_MODEL", "Forecast", "GdriveError", "KeyframeGrids", "OccDataset", "OccupancySequence",
    "RenderedFrame", "Rendering", "RunFailure", "Scene", "Trajectory", "TrajectoryTooShort", "Video", "WorldModel",
    "forecast", "generate", "open_dataset", "plan_trajectory", "render",
]

"""What the occupancy world-model commands ask for, as plain values: `train-vae`,
`train-forecaster`, `forecast` and `evaluate occ`. Each field's default is the command's default
(`gdrive <command> --help` shows it), declared here once.

Light on purpose (no torch, no numpy), so the help reads these without loading the models.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime.train_request import TrainRequest

PAST, FUTURE = 3, 6  # official windows: 3 past keyframes, 6 future (3 s)
MAX_FUTURE = 40  # --future bound: 20 s at 2 Hz
STAGES = ("predict", "e2e", "fuse")
DEFAULT_HORIZON = FUTURE  # forecast keyframes: 3 s, the GenieDrive protocol


@dataclass
class TrainVAERequest(TrainRequest):
    model_config: str = "paper"


@dataclass
class TrainForecasterRequest(TrainRequest):
    stage: str = "predict"
    init: str = "latest"
    batch_size: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    warmup: int = 50
    val_windows: int = 4
    motion_prior: str | None = None  # predict stage: override the init config's forecaster prior
    future: int = FUTURE  # keyframes forecast per training window (predict, e2e); above 6 a curriculum


@dataclass
class ForecastRequest:
    scene: str
    traj: str = "straight"
    dataset: str = "latest"
    model: str | None = None  # None: the shipped demo weights
    frame: int | None = None  # start keyframe; None: the first with 3 past frames
    horizon: int | None = None  # future keyframes at 2 Hz
    speed: float | None = None  # m/s for named trajectories; None: the logged speed at the start
    name: str | None = None
    previews: bool = True
    adherence: bool = True
    device: str = "auto"
    force: bool = False
    world: str = "model"  # model | simulator | auto (simulator for synthetic scenes, else model)


@dataclass
class EvaluateOccRequest:
    dataset: str = "latest"
    model: str | None = None
    split: str | None = None
    max_windows: int | None = None
    adherence: bool = True
    device: str = "auto"
    counterfactual: bool = False  # score named routes against the re-simulated truth (synthetic scenes)
    max_routes: int | None = None  # with counterfactual: this many routes at most

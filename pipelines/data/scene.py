"""One scene of a dataset: metadata (`scene.json`) and its per-frame occupancy arrays.

`scene.json` holds the ordered frame tokens, timestamps (µs), ego->global poses (4x4), the sensor
rig, the split and the instance table. Instance boxes are in the global frame, one row per frame
the instance appears in: [x, y, z, length, width, height, yaw] with (x, y, z) the box centre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .occ3d import CLASS_NAMES, GRID_SHAPE
from .rig import Rig
from ..errors import BadInput
from ..store.names import check_component

SCENE_SCHEMA = 1

# Keyframes are 2 Hz (the data contract): every source, forecast, trajectory and render steps by
# KEYFRAME_DT between keyframes; scene.json timestamps by KEYFRAME_US.
KEYFRAME_HZ = 2.0
KEYFRAME_DT = 1.0 / KEYFRAME_HZ  # seconds between keyframes
KEYFRAME_US = round(KEYFRAME_DT * 1_000_000)  # the same step in microseconds


@dataclass
class Instance:
    """One object track. `id` is its value in the instance grids (1-based, 0 = none)."""

    name: str
    id: int
    cls: int
    frames: list[int]
    boxes: np.ndarray  # [len(frames), 7] global x, y, z, l, w, h, yaw
    attributes: dict = field(default_factory=dict)

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.cls]

    def to_dict(self) -> dict:
        d = {
            "id": int(self.id),
            "class": CLASS_NAMES[self.cls],
            "class_index": int(self.cls),
            "frames": [int(f) for f in self.frames],
            "boxes": np.round(np.asarray(self.boxes, dtype=np.float64), 5).tolist(),
        }
        if self.attributes:
            d["attributes"] = self.attributes
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict) -> "Instance":
        return cls(name, int(d["id"]), int(d["class_index"]), list(d["frames"]),
                   np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 7), d.get("attributes", {}))


@dataclass
class SceneMeta:
    name: str
    tokens: list[str]
    timestamps: np.ndarray  # [T] int64 µs
    ego_to_global: np.ndarray  # [T, 4, 4] float64
    rig: Rig
    instances: dict[str, Instance] = field(default_factory=dict)
    split: str = "train"
    source: str = "synthetic"
    extra: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.tokens)

    def to_dict(self) -> dict:
        return {
            "schema": SCENE_SCHEMA,
            "name": self.name,
            "split": self.split,
            "source": self.source,
            "frame_tokens": list(self.tokens),
            "timestamps_us": [int(t) for t in self.timestamps],
            "ego_to_global": np.asarray(self.ego_to_global, dtype=np.float64).tolist(),
            "rig": self.rig.to_dict(),
            "instances": {n: inst.to_dict() for n, inst in self.instances.items()},
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "scene.json") -> "SceneMeta":
        if not isinstance(d, dict):
            raise BadInput(f"{where}: malformed scene record (a JSON {type(d).__name__}, not an object); "
                           "re-run prepare-occ with --force")
        try:
            poses = np.asarray(d["ego_to_global"], dtype=np.float64)
            meta = cls(
                name=d["name"],
                tokens=list(d["frame_tokens"]),
                timestamps=np.asarray(d["timestamps_us"], dtype=np.int64),
                ego_to_global=poses,
                rig=Rig.from_dict(d["rig"], where=f"{where} rig"),
                instances={n: Instance.from_dict(n, v) for n, v in d.get("instances", {}).items()},
                split=d.get("split", "train"),
                source=d.get("source", "unknown"),
                extra=d.get("extra", {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(f"{where}: malformed scene record ({type(exc).__name__}: {exc}); re-run prepare-occ with --force") from None
        meta.validate(where)
        return meta

    def validate(self, where: str = "scene") -> None:
        # The name and the tokens become folder names (gts/<scene>/<token>/): never '..' or '/'.
        check_component(self.name, where, "scene name")
        for token in self.tokens:
            check_component(token, where, f"scene '{self.name}' frame token")
        t = len(self.tokens)
        if t == 0:
            raise BadInput(f"{where}: scene '{self.name}' has no frames")
        if len(set(self.tokens)) != t:
            raise BadInput(f"{where}: scene '{self.name}' repeats a frame token")
        if self.timestamps.shape != (t,) or self.ego_to_global.shape != (t, 4, 4):
            raise BadInput(
                f"{where}: scene '{self.name}' has {t} tokens but {self.timestamps.shape[0]} timestamps "
                f"and {self.ego_to_global.shape[0]} poses; they must match one to one"
            )
        if t > 1 and np.any(np.diff(self.timestamps) <= 0):
            raise BadInput(f"{where}: scene '{self.name}' timestamps are not strictly increasing")
        if not np.all(np.isfinite(self.ego_to_global)):
            raise BadInput(f"{where}: scene '{self.name}' has a non-finite ego pose")


@dataclass
class SceneData:
    """A scene with its occupancy: every array is [T, 200, 200, 16]."""

    meta: SceneMeta
    semantics: np.ndarray  # uint8, 0..17
    mask_lidar: np.ndarray  # uint8, 0/1
    mask_camera: np.ndarray  # uint8, 0/1
    instances: np.ndarray | None = None  # uint16, 0 = none

    def validate(self, where: str = "scene") -> None:
        self.meta.validate(where)
        shape = (self.meta.num_frames, *GRID_SHAPE)
        for key in ("semantics", "mask_lidar", "mask_camera"):
            arr = getattr(self, key)
            if arr.shape != shape or arr.dtype != np.uint8:
                raise BadInput(f"{where}: {key} is {arr.dtype}{tuple(arr.shape)}, expected uint8{shape}")
        if int(self.semantics.max(initial=0)) > 17:
            raise BadInput(f"{where}: semantics hold labels above 17; map them onto Occ3D classes 0..17")
        if self.instances is not None and (self.instances.shape != shape or self.instances.dtype != np.uint16):
            raise BadInput(f"{where}: instances is {self.instances.dtype}{tuple(self.instances.shape)}, expected uint16{shape}")

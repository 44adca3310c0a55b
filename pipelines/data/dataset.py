"""Reading a dataset back: scenes, frames, poses, controls, commands and instances.

    ds = OccDataset.open("demo")                 # by name, id or 'latest' in the workspace
    for scene in ds.scenes(split="train"):
        occ = scene.semantics(0)                 # [200, 200, 16] uint8
        scene.controls                           # [T, 5] Δx, Δy, Δyaw, speed, yaw rate
        scene.commands                           # [T] index into ("right", "left", "straight")
        scene.instances["car_3"].boxes           # [n, 7] global boxes
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .controls import command_one_hot, commands, step_controls
from .occ3d import GRID_SHAPE, load_instances, load_labels
from .scene import Instance, SceneMeta
from ..errors import BadInput
from ..store import Workspace, find_artifact
from ..store.artifacts import read_manifest
from ..store.names import check_component, check_id


@dataclass(frozen=True)
class Frame:
    scene: "Scene"
    index: int

    @property
    def token(self) -> str:
        return self.scene.meta.tokens[self.index]

    @property
    def timestamp_us(self) -> int:
        return int(self.scene.meta.timestamps[self.index])

    @property
    def ego_to_global(self) -> np.ndarray:
        return self.scene.meta.ego_to_global[self.index]

    @property
    def path(self) -> Path:
        return self.scene.dataset.root / "gts" / self.scene.name / self.token

    def labels(self) -> dict[str, np.ndarray]:
        """{'semantics', 'mask_lidar', 'mask_camera'}: [200, 200, 16] uint8 each."""
        return load_labels(self.path / "labels.npz")

    def instance_grid(self) -> np.ndarray | None:
        """[200, 200, 16] uint16 instance ids (0 = none), or None where instances are unknown."""
        p = self.path / "instances.npz"
        return load_instances(p) if p.exists() else None


class Scene:
    def __init__(self, dataset: "OccDataset", meta: SceneMeta):
        self.dataset = dataset
        self.meta = meta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def split(self) -> str:
        return self.meta.split

    @property
    def num_frames(self) -> int:
        return self.meta.num_frames

    @property
    def frames(self) -> list[Frame]:
        return [Frame(self, i) for i in range(self.num_frames)]

    @property
    def poses(self) -> np.ndarray:
        """[T, 4, 4] ego -> global."""
        return self.meta.ego_to_global

    @property
    def timestamps_us(self) -> np.ndarray:
        return self.meta.timestamps

    @functools.cached_property
    def controls(self) -> np.ndarray:
        """[T, 5] float32: Δx, Δy, Δyaw to the next frame (current ego frame), speed, yaw rate."""
        return step_controls(self.poses, self.timestamps_us)

    @functools.cached_property
    def commands(self) -> np.ndarray:
        """[T] int64 command index into ("right", "left", "straight")."""
        return commands(self.poses, self.timestamps_us)

    @property
    def command_one_hot(self) -> np.ndarray:
        return command_one_hot(self.commands)

    @property
    def instances(self) -> dict[str, Instance]:
        return self.meta.instances

    @property
    def rig(self):
        return self.meta.rig

    def semantics(self, i: int) -> np.ndarray:
        return self.frames[i].labels()["semantics"]

    def all_semantics(self) -> np.ndarray:
        """[T, 200, 200, 16] uint8 (reads every frame)."""
        out = np.empty((self.num_frames, *GRID_SHAPE), np.uint8)
        for i, f in enumerate(self.frames):
            out[i] = f.labels()["semantics"]
        return out


class OccDataset:
    """A dataset artifact (`datasets/<name>/`) opened for reading."""

    def __init__(self, root: Path, workspace: Workspace | None = None):
        self.root = Path(root)
        manifest = read_manifest(self.root)
        if manifest is None or manifest.get("kind") != "dataset":
            raise BadInput(f"{self.root}: not a gdrive dataset (no dataset manifest.json); make one with `gdrive prepare-occ`")
        _check_manifest(manifest, self.root / "manifest.json")
        self.manifest = manifest
        # Where derived artifacts (the packed cache) go: the workspace it was opened in, also for
        # a dataset opened by a folder path elsewhere (nothing is written next to that folder).
        self._workspace = workspace
        self._scenes: dict[str, Scene] = {}

    def _elsewhere(self, scene: str) -> str:
        """Where else in the workspace the scene is: after `gdrive edit`, `--dataset latest` is the
        edited dataset, which holds only the edited scene."""
        if self._workspace is None:
            return ""
        from ..store.artifacts import list_artifacts

        hits = [a.name for a in reversed(list_artifacts(self._workspace, "dataset"))
                if a.path.resolve() != self.root.resolve() and any(s.get("name") == scene for s in a.manifest.get("scenes", []))]
        return f"; it is in dataset '{hits[0]}' (pass --dataset {hits[0]})" if hits else ""

    @classmethod
    def open(cls, ref: str, workspace: str | Path | None = None, flag: str = "--dataset") -> "OccDataset":
        """Open by name, id, id prefix or 'latest' in a workspace, or by a dataset folder path."""
        ws = Workspace.at(workspace)
        p = Path(ref)
        if (p / "manifest.json").is_file():
            return cls(p, ws)
        return cls(find_artifact(ws, "dataset", ref, flag).path, ws)

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def workspace(self) -> Workspace:
        return self._workspace if self._workspace is not None else Workspace(self.root.parent.parent)

    def scene_names(self, split: str | None = None) -> list[str]:
        return [s["name"] for s in self.manifest["scenes"] if split is None or s.get("split") == split]

    def scene(self, name: str) -> Scene:
        if name not in self._scenes:
            if name not in self.scene_names():
                have = self.scene_names()
                shown = ", ".join(have[:10]) + (f" … ({len(have)} in all)" if len(have) > 10 else "")
                raise BadInput(f"--scene '{name}': not in dataset '{self.name}' (scenes: {shown}){self._elsewhere(name)}; "
                               f"list them with `gdrive list scenes --dataset {self.name}`")
            path = self.root / "scenes" / name / "scene.json"
            try:
                raw = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise BadInput(f"{path}: unreadable scene record ({type(exc).__name__}); rebuild with `gdrive prepare-occ --force`") from None
            self._scenes[name] = Scene(self, SceneMeta.from_dict(raw, str(path)))
        return self._scenes[name]

    def scenes(self, split: str | None = None) -> list[Scene]:
        return [self.scene(n) for n in self.scene_names(split)]


def _check_manifest(m: dict, where: Path) -> None:
    """The parts of a dataset manifest that reading relies on (the id names the cache folder)."""
    check_id(m.get("id"), str(where))
    scenes = m.get("scenes")
    if not isinstance(scenes, list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("split", ""), str) for s in scenes):
        raise BadInput(f"{where}: no valid 'scenes' list (each entry {{name, split}}); the manifest was edited or "
                       "damaged, rebuild the dataset with `gdrive prepare-occ --force`")
    for s in scenes:
        check_component(s["name"], str(where), "scene name")


def frame_range(text: str | None, n: int) -> range:
    """`--frames a:b` over a sequence of `n` keyframes (default: all), for edit and render."""
    if text is None:
        return range(n)
    try:
        a, b = (int(v) if v.strip() else None for v in text.split(":"))
    except ValueError:
        raise BadInput(f"--frames '{text}': give a keyframe range a:b (e.g. 0:10)") from None
    out = range(*slice(a, b).indices(n))
    if len(out) == 0:
        raise BadInput(f"--frames {text}: selects no keyframe of the {n} there are")
    return out

"""One value for "keyframes of semantic occupancy in time": what `render` draws and `generate` turns
into video, whether the keyframes come from a dataset scene, a forecast, an Occ3D-layout folder or
arrays made in a notebook.

An `OccupancySequence` holds, per keyframe, its token, time, ego pose (all poses in the ego frame of
one reference keyframe, named by `reference`), labels and, where known, instance ids, with the rig
that senses it. Labels are read on access (`KeyframeGrids`), so a long scene costs no memory until
it is drawn; `np.asarray(seq.labels)` stacks them. `then` joins two sequences that share their
reference frame: the current keyframe of a scene followed by a forecast made from it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import BadInput
from ..store.fingerprint import folder_fingerprint
from ..store.artifacts import read_manifest
from ..store.names import check_component
from .occ3d import FREE, GRID_SHAPE, load_labels
from .rig import Rig, default_rig, read_rig_file
from .scene import KEYFRAME_DT



class KeyframeGrids:
    """Per-keyframe grids [X, Y, Z] read when indexed: `grids[i]`, `len(grids)`, iteration, and
    `np.asarray(grids)` -> [K, X, Y, Z]."""

    def __init__(self, read: Callable[[int], np.ndarray], count: int):
        self._read, self._count = read, count

    @classmethod
    def of(cls, arrays: np.ndarray | list[np.ndarray]) -> "KeyframeGrids":
        return cls(lambda i: arrays[i], len(arrays))

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> np.ndarray:
        if not -self._count <= i < self._count:
            raise IndexError(f"keyframe {i} of {self._count}")
        return self._read(i % self._count)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(self._count))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.stack(list(self)) if self._count else np.empty((0, *GRID_SHAPE), np.uint8)
        return out if dtype is None else out.astype(dtype)

    @staticmethod
    def join(a: "KeyframeGrids", b: "KeyframeGrids") -> "KeyframeGrids":
        n = len(a)
        return KeyframeGrids(lambda i: a[i] if i < n else b[i - n], n + len(b))


@dataclass(frozen=True)
class OccupancySequence:
    """Keyframes of semantic occupancy. K keyframes:

    tokens [K]; times [K] seconds (from the reference keyframe); poses [K, 4, 4] ego poses in the ego
    frame of the `reference` keyframe; labels [K] x [200, 200, 16] uint8; instances [K] x
    [200, 200, 16] uint16 or None; sources [K] ("observed" | "forecast"); files [K] the labels.npz
    each keyframe was read from (None for arrays); provenance: the JSON-able description artifact
    ids hash (where the keyframes come from); label: what default artifact names start with.
    """

    scene: str
    tokens: tuple[str, ...]
    times: np.ndarray
    poses: np.ndarray
    rig: Rig
    labels: KeyframeGrids
    instances: KeyframeGrids | None
    sources: tuple[str, ...]
    files: tuple[Path | None, ...]
    provenance: dict
    label: str
    reference: str | None = None  # token of the keyframe whose ego frame the poses are in (None: unknown)
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)

    # -- made from ... --------------------------------------------------------------------------

    @classmethod
    def from_scene(cls, scene, frames: Iterable[int] | None = None) -> "OccupancySequence":
        """A dataset scene's keyframes (all, or the given frame indices in order), poses in the ego
        frame of the first of them."""
        keys = list(range(scene.num_frames)) if frames is None else [int(i) for i in frames]
        if not keys or not all(0 <= i < scene.num_frames for i in keys):
            raise BadInput(f"--frame {keys}: scene '{scene.name}' has frames 0..{scene.num_frames - 1}")
        ref = scene.poses[keys[0]]
        poses = np.linalg.inv(ref)[None] @ scene.poses[keys]
        stamps = scene.timestamps_us[keys]
        frames_ = [scene.frames[i] for i in keys]
        provenance = {"dataset": scene.dataset.id, "scene": scene.name}
        if frames is not None:
            provenance["frames"] = keys
        return cls(scene.name, tuple(f.token for f in frames_), (stamps - scene.timestamps_us[keys[0]]) / 1e6, poses,
                   scene.rig, KeyframeGrids(lambda i: scene.semantics(keys[i]), len(keys)),
                   KeyframeGrids(lambda i: frames_[i].instance_grid(), len(keys)), ("observed",) * len(keys),
                   tuple(f.path / "labels.npz" for f in frames_), provenance, f"{scene.dataset.name}-{scene.name}",
                   frames_[0].token)

    @classmethod
    def from_folder(cls, folder: str | Path, rig: Rig | None = None, flag: str = "--occ") -> "OccupancySequence":
        """An Occ3D-layout folder of one scene (gts/<scene>/<token>/labels.npz), such as a forecast:
        its frames.json, when there is one, gives the keyframe order, times and poses; else the
        keyframes stand in place at 2 Hz in token order. The rig: `rig`, else the folder's rig.json,
        else nuScenes'."""
        folder = Path(folder)
        files = sorted(folder.glob("gts/*/*/labels.npz"))
        if not files:
            raise BadInput(f"{flag} {folder}: no gts/<scene>/<token>/labels.npz inside; give an Occ3D-layout folder "
                           f"(a forecast: gdrive forecast --scene X --traj straight)")
        scenes = sorted({f.parent.parent.name for f in files})
        for n in scenes:
            check_component(n, f"{flag} {folder}", "scene folder name")
        if len(scenes) > 1:
            raise BadInput(f"{flag} {folder}: holds scenes {', '.join(scenes)}; render one at a time from a folder with "
                           "one scene")
        poses, times, dataset, reference = None, None, None, None
        meta = folder / "frames.json"
        if meta.is_file():  # a forecast: keyframe order, times and poses in its start frame
            order, poses, times, dataset, reference = _forecast_frames(meta, flag)
            by_token = {f.parent.name: f for f in files}
            files = [by_token[t] for t in order if t in by_token]
        if poses is None or len(poses) != len(files):
            poses = np.repeat(np.eye(4)[None], len(files), 0)  # unknown motion: keyframes in place
            times = np.arange(len(files)) * KEYFRAME_DT
            reference = None
        if rig is None:
            rig = read_rig_file(folder / "rig.json", flag) if (folder / "rig.json").is_file() else default_rig()
        manifest = read_manifest(folder) or {}
        # a forecast's name carries its dataset and scene; else the dataset its frames.json names
        label = str(manifest["name"]) if manifest.get("kind") == "forecast" and manifest.get("name") else \
            f"{dataset or folder.name}-{scenes[0]}"
        provenance = {"occ": str(folder.resolve()), "content": folder_fingerprint(folder, files)}
        grids = KeyframeGrids(lambda i: load_labels(files[i], require_masks=False)["semantics"], len(files))
        return cls(scenes[0], tuple(f.parent.name for f in files), times, poses, rig, grids, None,
                   ("forecast" if reference else "observed",) * len(files), tuple(files), provenance, label, reference)

    @classmethod
    def from_arrays(cls, labels, poses=None, times=None, rig: Rig | None = None, scene: str = "sequence",
                    tokens: Iterable[str] | None = None, instances=None) -> "OccupancySequence":
        """Keyframes made in memory: labels [K, 200, 200, 16] uint8 (0..17); poses [K, 4, 4] in one
        frame (default: in place); times [K] s (default 2 Hz); the rig (default nuScenes'). The
        provenance is a digest of the arrays, so renders of the same arrays are reused."""
        arr = np.asarray(labels)
        if arr.ndim != 4 or arr.shape[1:] != GRID_SHAPE or not len(arr):
            raise BadInput(f"labels: shape {arr.shape}, want [K, 200, 200, 16] with K >= 1 (Occ3D x, y, z)")
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > FREE:
            raise BadInput(f"labels: want integer class ids 0..{FREE} (Occ3D), got {arr.dtype} in "
                           f"{arr.min()}..{arr.max()}")
        k = len(arr)
        poses = np.repeat(np.eye(4)[None], k, 0) if poses is None else np.asarray(poses, np.float64)
        times = np.arange(k) * KEYFRAME_DT if times is None else np.asarray(times, np.float64)
        if poses.shape != (k, 4, 4) or times.shape != (k,):
            raise BadInput(f"poses/times: shapes {poses.shape} and {times.shape}, want [{k}, 4, 4] and [{k}]")
        if not (np.isfinite(poses).all() and np.isfinite(times).all()):
            raise BadInput("poses/times: hold a non-finite value")
        tokens = tuple(tokens) if tokens is not None else tuple(f"{i:06d}" for i in range(k))
        if len(tokens) != k:
            raise BadInput(f"tokens: {len(tokens)} for {k} keyframes")
        for t in tokens:
            check_component(t, "tokens", "keyframe token")
        check_component(scene, "scene", "scene name")
        digest = hashlib.sha256()
        for a in (arr.astype(np.uint8), np.round(poses, 6), np.round(times, 6)):
            digest.update(np.ascontiguousarray(a).tobytes())
        inst = None if instances is None else KeyframeGrids.of(np.asarray(instances))
        return cls(scene, tokens, times, poses, rig or default_rig(), KeyframeGrids.of(arr.astype(np.uint8)), inst,
                   ("observed",) * k, (None,) * k, {"arrays": digest.hexdigest()[:16], "scene": scene}, scene, tokens[0])

    # -- combining ------------------------------------------------------------------------------

    def then(self, later: "OccupancySequence") -> "OccupancySequence":
        """These keyframes followed by `later`'s (the current frame, then a forecast from it): both
        must have their poses in the same reference frame; the rig is this one's."""
        if self.reference is None or later.reference != self.reference:
            raise BadInput(f"then: the sequences' poses are in different frames ({self.reference} and "
                           f"{later.reference}); join a scene's start frame with a forecast made from it")
        if later.scene != self.scene:
            raise BadInput(f"then: scenes '{self.scene}' and '{later.scene}' differ")
        instances = None
        if self.instances is not None or later.instances is not None:
            instances = KeyframeGrids.join(_or_unknown(self.instances, len(self)), _or_unknown(later.instances, len(later)))
        return replace(self, tokens=self.tokens + later.tokens, times=np.concatenate([self.times, later.times]),
                       poses=np.concatenate([self.poses, later.poses]),
                       labels=KeyframeGrids.join(self.labels, later.labels), instances=instances,
                       sources=self.sources + later.sources, files=self.files + later.files,
                       provenance={"then": [self.provenance, later.provenance]}, label=later.label)


def _or_unknown(grids: KeyframeGrids | None, count: int) -> KeyframeGrids:
    return grids if grids is not None else KeyframeGrids(lambda i: None, count)


def _forecast_frames(meta: Path, flag: str) -> tuple[list[str], np.ndarray, np.ndarray, str | None, str | None]:
    """A forecast's frames.json: (tokens, ego poses [K, 4, 4] in its start frame, times [K] s, the
    dataset it names or None, the start token or None)."""
    try:
        info = json.loads(meta.read_text())
        dataset = info.get("dataset") if isinstance(info.get("dataset"), str) and info.get("dataset") else None
        start = info.get("start_token") if isinstance(info.get("start_token"), str) else None
        order = [check_component(e["token"], str(meta), "frame token") for e in info["frames"]]
        poses = np.array([e["ego_in_start"] for e in info["frames"]], np.float64).reshape(len(order), 4, 4)
        times = np.array([e["t_s"] for e in info["frames"]], np.float64).reshape(len(order))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"{flag} {meta}: not a forecast's frames.json ({type(exc).__name__}); remove it to render the "
                       "folder's keyframes in place, or forecast again") from None
    if not (np.isfinite(poses).all() and np.isfinite(times).all()):
        raise BadInput(f"{flag} {meta}: holds a non-finite pose or time; forecast again")
    return order, poses, times, dataset, start

"""The packed training cache: every frame's semantics in one memory-mapped file.

Training reads this, never the dataset's npz files (decompressing ~10 npz per window is what makes
the official loader slow). It is an artifact of its own (`caches/<dataset id>/`), derived from the
dataset and rebuilt only when the dataset's id changes; built on first use under the artifact lock,
so parallel trainers on one machine build it once.

Files:
    semantics.u8   raw uint8 [N, 200, 200, 16], frames scene-major in dataset order
    index.npz      scene_start [S + 1], frame_scene [N], frame_index [N], timestamps_us [N],
                   ego_to_global [N, 4, 4], controls [N, 5], commands [N]
    scenes.json    scene names and splits in order
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..console import ui
from .dataset import OccDataset
from .occ3d import GRID_SHAPE, npz_bytes
from ..store import publish
from ..store.artifacts import read_manifest

CACHE_SCHEMA = 1
FRAME_BYTES = int(np.prod(GRID_SHAPE))


@dataclass
class PackedCache:
    root: Path
    semantics: np.memmap  # [N, 200, 200, 16] uint8, read-only
    scene_names: list[str]
    scene_splits: list[str]
    scene_start: np.ndarray  # [S + 1]
    frame_scene: np.ndarray  # [N]
    frame_index: np.ndarray  # [N]
    timestamps_us: np.ndarray  # [N]
    ego_to_global: np.ndarray  # [N, 4, 4]
    controls: np.ndarray  # [N, 5]
    commands: np.ndarray  # [N]

    @property
    def num_frames(self) -> int:
        return int(self.scene_start[-1])

    @classmethod
    def load(cls, root: Path) -> "PackedCache":
        root = Path(root)
        idx = np.load(root / "index.npz", allow_pickle=False)
        scenes = json.loads((root / "scenes.json").read_text())
        n = int(idx["scene_start"][-1])
        sem = np.memmap(root / "semantics.u8", dtype=np.uint8, mode="r", shape=(n, *GRID_SHAPE))
        return cls(root, sem, [s["name"] for s in scenes], [s["split"] for s in scenes],
                   idx["scene_start"], idx["frame_scene"], idx["frame_index"], idx["timestamps_us"],
                   idx["ego_to_global"], idx["controls"], idx["commands"])


def _build(dataset: OccDataset, writer) -> dict:
    scenes = dataset.scenes()
    total = sum(s.num_frames for s in scenes)
    out = np.memmap(writer.path("semantics.u8"), dtype=np.uint8, mode="w+", shape=(total, *GRID_SHAPE))
    start = np.zeros(len(scenes) + 1, np.int64)
    cols: dict[str, list] = {k: [] for k in ("frame_scene", "frame_index", "timestamps_us", "ego_to_global", "controls", "commands")}
    pos = 0
    with ui.progress(f"packing cache for dataset '{dataset.name}'", total) as bar:
        for si, scene in enumerate(scenes):
            start[si] = pos
            for f in scene.frames:
                out[pos] = f.labels()["semantics"]
                pos += 1
                bar.advance()
            t = scene.num_frames
            cols["frame_scene"].append(np.full(t, si, np.int32))
            cols["frame_index"].append(np.arange(t, dtype=np.int32))
            cols["timestamps_us"].append(scene.timestamps_us)
            cols["ego_to_global"].append(scene.poses)
            cols["controls"].append(scene.controls)
            cols["commands"].append(scene.commands)
    start[-1] = pos
    out.flush()
    del out
    arrays = {"scene_start": start, **{k: np.concatenate(v) for k, v in cols.items()}}
    writer.write_bytes("index.npz", npz_bytes(arrays))
    writer.write_json("scenes.json", [{"name": s.name, "split": s.split, "frames": s.num_frames} for s in scenes])
    return {"frames": int(pos), "scenes": len(scenes), "dataset": dataset.name}


def open_cache(dataset: OccDataset, force: bool = False) -> PackedCache:
    """The dataset's packed cache, built on first use (in the dataset's workspace)."""
    ws = dataset.workspace
    name = dataset.id
    result = publish(ws, "cache", "pack", CACHE_SCHEMA, name, {"dataset": dataset.name}, {},
                     {"dataset": dataset.id}, lambda w: _build(dataset, w), force)
    if not result.reused:
        ui.info(f"built packed cache {result.artifact.path} ({result.artifact.manifest['frames']} frames)")
    return PackedCache.load(result.artifact.path)


def cache_is_built(dataset: OccDataset) -> bool:
    m = read_manifest(dataset.workspace.kind_dir("cache") / dataset.id)
    return m is not None

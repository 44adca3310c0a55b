"""The `occ-folder` source: per-frame occupancy arrays + a poses file + a class mapping.

The way simulator exports (CARLA and others) come in. Layout (documented in the README):

    ROOT/
      classes.yaml        label value in the files -> Occ3D class name or index (all used values)
      rig.json            optional sensor rig (the `rig` record of scene.json); default nuScenes rig
      <scene>/
        poses.csv         frame,timestamp_us,x,y,z,qw,qx,qy,qz   (ego->global, one row per frame)
        <frame>.npz       'semantics' [200,200,16] ints; optional 'mask_lidar', 'mask_camera' (0/1),
                          'instances' (uint16); also read: <frame>.npy or <frame>/labels.npz (Occ3D)

Frames without masks get them by ray casting from the rig, like synthetic worlds.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import yaml

from ..occ3d import CLASS_INDEX, FREE, GRID_SHAPE, NUM_CLASSES, check_grid, zlib_error
from ..rig import Rig, default_rig, read_rig_file
from ..scene import SceneData, SceneMeta
from ...errors import BadInput
from ...geometry import pose_matrix
from ...limits import MAX_SCENE_FRAMES, read_text_file
from ...store.fingerprint import folder_fingerprint
from ...store.names import check_component

POSE_COLUMNS = ("frame", "timestamp_us", "x", "y", "z", "qw", "qx", "qy", "qz")
CLASS_FILE = "classes.yaml"
MAX_LABEL = 65535  # label values in the files (uint16 range)


def _load_class_map(root: Path) -> np.ndarray:
    """classes.yaml -> lookup table [max_label + 1] int16 (-1 = unmapped)."""
    path = root / CLASS_FILE
    if not path.is_file():
        raise BadInput(f"{path}: class-mapping file is missing; write {CLASS_FILE} mapping each label value to an Occ3D class (see README)")
    try:
        raw = yaml.safe_load(read_text_file(path, "class map"))
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
    if not isinstance(raw, dict) or not raw:
        raise BadInput(f"{path}: expected a mapping 'label value: Occ3D class', got {type(raw).__name__}")
    bad = next((k for k in raw if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= MAX_LABEL), None)
    if bad is not None:
        raise BadInput(f"{path}: key {bad!r} is not a label value; keys are the whole numbers 0..{MAX_LABEL} "
                       "found in the files")
    lut = np.full(max(raw) + 1, -1, np.int16)
    for k, v in raw.items():
        if isinstance(v, str):
            if v not in CLASS_INDEX:
                raise BadInput(f"{path}: label {k} maps to unknown class '{v}'; use one of {', '.join(CLASS_INDEX)}")
            v = CLASS_INDEX[v]
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < NUM_CLASSES:
            raise BadInput(f"{path}: entry {k}: {v} is not a label >= 0 mapped to an Occ3D class 0..17")
        lut[int(k)] = v
    return lut


def _read_poses(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    if not path.is_file():
        raise BadInput(f"{path}: poses file is missing; write poses.csv with columns {','.join(POSE_COLUMNS)}")
    rows = list(csv.DictReader(io.StringIO(read_text_file(path, "poses file"), newline="")))
    if not rows:
        raise BadInput(f"{path}: no frames; write one row per frame with columns {','.join(POSE_COLUMNS)}")
    if len(rows) > MAX_SCENE_FRAMES:
        raise BadInput(f"{path}: {len(rows):,} frames; a scene holds at most {MAX_SCENE_FRAMES:,} keyframes "
                       "(it is built in memory); split it into several scene folders")
    missing = [c for c in POSE_COLUMNS if c not in rows[0]]
    if missing:
        raise BadInput(f"{path}: missing column(s) {', '.join(missing)}; the header must be {','.join(POSE_COLUMNS)}")
    frames, ts, poses = [], [], []
    for n, r in enumerate(rows, start=2):
        try:
            vals = [float(r[c]) for c in POSE_COLUMNS[2:]]
            t = int(r["timestamp_us"])
        except (TypeError, ValueError):
            raise BadInput(f"{path}: line {n} has a non-numeric value; every column but 'frame' must be a number") from None
        if not np.all(np.isfinite(vals)) or np.linalg.norm(vals[3:]) < 1e-6:
            raise BadInput(f"{path}: line {n} has a non-finite position or a zero quaternion")
        frames.append(r["frame"])
        ts.append(t)
        poses.append(pose_matrix(np.asarray(vals[3:]), vals[:3]))
    return frames, np.asarray(ts, np.int64), np.stack(poses)


def _frame_file(scene_dir: Path, frame: str) -> Path:
    for cand in (scene_dir / f"{frame}.npz", scene_dir / f"{frame}.npy", scene_dir / frame / "labels.npz"):
        if cand.is_file():
            return cand
    raise BadInput(f"{scene_dir / frame}.npz: frame listed in poses.csv has no occupancy file (.npz, .npy or {frame}/labels.npz)")


def _read_frame(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npy":
            return {"semantics": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as npz:
            if "semantics" not in npz.files:
                raise BadInput(f"{path}: no 'semantics' array (found {', '.join(npz.files) or 'none'}); name the label array 'semantics'")
            return {k: np.asarray(npz[k]) for k in npz.files}
    except BadInput:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib_error()) as exc:
        raise BadInput(f"{path}: not a readable array file ({type(exc).__name__}); the file is truncated or corrupt, re-export it") from None


class OccFolderSource:
    kind = "occ-folder"
    parallel = True  # scenes are independent files; masks may need ray casting

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BadInput(f"--dataroot {self.root}: no such folder; point it at an occupancy export (see README, occ-folder)")
        self.lut = _load_class_map(self.root)
        self.rig = self._load_rig()
        self._scene_names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "poses.csv").exists())
        for n in self._scene_names:  # scene folder names become dataset folder names
            check_component(n, str(self.root / n), "scene folder name")
        if not self._scene_names:
            raise BadInput(f"--dataroot {self.root}: no scene folders with a poses.csv; see the occ-folder layout in the README")

    def _load_rig(self) -> Rig:
        path = self.root / "rig.json"
        return read_rig_file(path) if path.exists() else default_rig()

    @property
    def scene_names(self) -> list[str]:
        return list(self._scene_names)

    def fingerprint(self) -> dict:
        """What identifies the input: path plus size and mtime of every file (cheap, no reads)."""
        return {"root": str(self.root.resolve()), "files": folder_fingerprint(self.root)}

    def id_fields(self) -> dict:
        return self.fingerprint()

    def load(self, name: str) -> SceneData:
        from ..raycast import visibility_masks

        scene_dir = self.root / name
        frames, ts, poses = _read_poses(scene_dir / "poses.csv")
        for f in frames:  # frame names become file and folder names: never '..', '.' or '/'
            check_component(f, str(scene_dir / "poses.csv"), "frame name")
        if len(set(frames)) != len(frames):
            raise BadInput(f"{scene_dir / 'poses.csv'}: a frame name repeats; each row needs its own frame")
        t = len(frames)
        sem = np.empty((t, *GRID_SHAPE), np.uint8)
        ml = np.empty_like(sem)
        mc = np.empty_like(sem)
        inst = None
        for i, fr in enumerate(frames):
            path = _frame_file(scene_dir, fr)
            arrs = _read_frame(path)
            raw = arrs["semantics"]
            if raw.shape != GRID_SHAPE:
                raise BadInput(f"{path}: 'semantics' has shape {tuple(raw.shape)}, expected {GRID_SHAPE} (x, y, z); re-export on the Occ3D grid")
            if raw.dtype.kind not in "iub":
                raise BadInput(f"{path}: 'semantics' has dtype {raw.dtype}, expected integer labels")
            lo, hi = int(raw.min()), int(raw.max())
            if lo < 0 or hi >= len(self.lut) or np.any(self.lut[np.unique(raw)] < 0):
                bad = [int(v) for v in np.unique(raw) if v < 0 or v >= len(self.lut) or self.lut[v] < 0]
                raise BadInput(f"{path}: label value(s) {bad[:5]} are not in {self.root / CLASS_FILE}; map them to Occ3D classes")
            sem[i] = self.lut[raw]
            if "mask_lidar" in arrs and "mask_camera" in arrs:
                for key, out in (("mask_lidar", ml), ("mask_camera", mc)):
                    check_grid(key, arrs[key].astype(np.uint8) if arrs[key].dtype == bool else arrs[key], str(path), max_value=1)
                    out[i] = arrs[key]
            else:
                ml[i], mc[i] = visibility_masks(sem[i], self.rig, FREE)
            if "instances" in arrs:
                check_grid("instances", arrs["instances"], str(path), dtype=np.uint16)
                if inst is None:
                    inst = np.zeros((t, *GRID_SHAPE), np.uint16)
                inst[i] = arrs["instances"]
        meta = SceneMeta(name, frames, ts, poses, self.rig, {}, split="train", source=self.kind,
                         extra={"dataroot": str(self.root.resolve())})
        data = SceneData(meta, sem, ml, mc, inst)
        data.validate(str(scene_dir))
        return data

"""Test helpers: run the CLI in-process or as a subprocess, and build small occupancy exports."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geniedrive.pipelines.data.occ3d import GRID_SHAPE
from geniedrive.pipelines.geometry import matrix_to_quat, planar_pose

REPO = Path(__file__).resolve().parents[1]
GDRIVE = [sys.executable, "-m", "geniedrive.cli.app"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def json(self) -> dict:
        return json.loads(self.out)


def run_cli(capsys, *args: str) -> Result:
    """Run `gdrive args...` in this process (fast) and capture its output."""
    from geniedrive.cli.app import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return Result(code, cap.out, cap.err)


def run_subprocess(*args: str, env: dict | None = None, timeout: float = 300) -> Result:
    proc = subprocess.run([*GDRIVE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=REPO)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def scene_occupancy(frames: int, seed: int = 0, free_value: int = 0) -> np.ndarray:
    """[T, 200, 200, 16] labels in an export's own ids: 0 free, 1 road, 2 car, 3 building.

    The car moves 2 voxels per frame; the building is a wall ahead of the ego.
    """
    rng = np.random.default_rng(seed)
    occ = np.full((frames, *GRID_SHAPE), free_value, np.uint8)
    occ[:, :, :, 2] = 1
    x0 = int(rng.integers(110, 130))
    for t in range(frames):
        x = x0 + 2 * t
        occ[t, x:x + 11, 90:95, 3:7] = 2
    occ[:, 170:172, 60:140, 3:12] = 3
    return occ


OCC_FOLDER_CLASSES = {0: "free", 1: "driveable_surface", 2: "car", 3: "manmade"}


def write_occ_folder(root: Path, scenes: int = 2, frames: int = 4, masks: bool = True, seed: int = 0) -> Path:
    """An occ-folder export: classes.yaml, and per scene poses.csv + <frame>.npz."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.yaml").write_text(yaml.safe_dump(OCC_FOLDER_CLASSES))
    for s in range(scenes):
        d = root / f"town{s:02d}"
        d.mkdir(exist_ok=True)
        occ = scene_occupancy(frames, seed + s)
        with open(d / "poses.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame", "timestamp_us", "x", "y", "z", "qw", "qx", "qy", "qz"])
            for t in range(frames):
                pose = planar_pose(5.0 * t, 0.3 * t * t, 0.05 * t)
                q = matrix_to_quat(pose[:3, :3])
                w.writerow([f"f{t:03d}", 1_000_000 + 500_000 * t, *pose[:3, 3], *q])
        for t in range(frames):
            arrays = {"semantics": occ[t]}
            if masks:
                arrays["mask_lidar"] = np.ones(GRID_SHAPE, np.uint8)
                arrays["mask_camera"] = (occ[t] != 0).astype(np.uint8)
            np.savez_compressed(d / f"f{t:03d}.npz", **arrays)
    return root


def artifact_dirs(ws: Path, kind: str = "datasets") -> list[str]:
    """Everything under a kind folder except the lock folder (temp folders included)."""
    d = ws / kind
    return sorted(p.name for p in d.iterdir() if p.name != ".locks") if d.is_dir() else []


def wait_for(predicate, timeout: float = 120.0, poll: float = 0.05) -> bool:
    """Poll `predicate()` until it is true (True) or the time is up (False)."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":  # zombies are gone, only not yet reaped
            parents[int(entry.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def temporaries(root: Path) -> list[str]:
    """Every `.tmp-*` / `.old-*` folder anywhere under root."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir() and p.name.startswith((".tmp-", ".old-")))


def on_a_carriageway(net, x, y, tol: float = 0.5) -> np.ndarray:
    """[M] whether points (x, y) of a synthetic road network's map frame lie on a carriageway
    (within `tol` m of a road's edge)."""
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    inside = np.zeros(len(x), bool)
    for yy, road in zip(net.ys, net.hroads):
        inside |= np.abs(y - yy) <= road.half_width + tol
    for xx, road in zip(net.xs, net.vroads):
        inside |= np.abs(x - xx) <= road.half_width + tol
    return inside

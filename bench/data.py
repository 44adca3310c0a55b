"""Data benchmark: prepare-occ throughput and forecasting-window loading, side by side.

Writes bench/results/data.json with, in one run on this machine:
  - synthetic: wall seconds of `gdrive prepare-occ --source synthetic --scenes 4 --frames 40`
    (a fresh process, imports and previews included) -> frames/s;
  - occ3d_files: `prepare-occ --source occ-folder` over the same frames exported as Occ3D files
    (`<scene>/<token>/labels.npz` + poses.csv) -> frames/s, with and without previews;
  - windows: forecasting windows/s (3 past + current + 6 future) from the packed memory-mapped
    cache against reading the 10 Occ3D npz files of each window with np.load, the way the
    official loader does. Goal: cache >= 10x.

Run: .venv/bin/python bench/data.py [--scenes 4] [--frames 40] [--windows 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geniedrive.pipelines.data.cache import open_cache  # noqa: E402
from geniedrive.pipelines.data.dataset import OccDataset  # noqa: E402
from geniedrive.pipelines.data.occ3d import CLASS_NAMES  # noqa: E402
from geniedrive.pipelines.data.windows import ForecastWindows  # noqa: E402
from geniedrive.pipelines.geometry import matrix_to_quat  # noqa: E402
from geniedrive.pipelines.store.atomic import write_text_atomic  # noqa: E402


def gdrive(ws: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "geniedrive.cli.app", "--workspace", str(ws), "--quiet", *args],
                   check=True, cwd=REPO)
    return time.perf_counter() - t0


def export_occ3d(ds: OccDataset, out: Path) -> int:
    """Write the dataset as an occ-folder export whose frames are Occ3D labels.npz files."""
    import yaml

    out.mkdir(parents=True)
    (out / "classes.yaml").write_text(yaml.safe_dump({i: n for i, n in enumerate(CLASS_NAMES)}))
    n = 0
    for s in ds.scenes():
        d = out / s.name
        d.mkdir()
        with open(d / "poses.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame", "timestamp_us", "x", "y", "z", "qw", "qx", "qy", "qz"])
            for f in s.frames:
                p = f.ego_to_global
                w.writerow([f.token, f.timestamp_us, *p[:3, 3], *matrix_to_quat(p[:3, :3])])
                (d / f.token).mkdir()
                shutil.copyfile(f.path / "labels.npz", d / f.token / "labels.npz")
                n += 1
    return n


def official_window(paths: list[Path]) -> np.ndarray:
    """What the official loader does per window: np.load every frame's labels.npz."""
    return np.stack([np.load(p)["semantics"] for p in paths])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--windows", type=int, default=300)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "data.json"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gdrive-bench-"))
    try:
        ws = tmp / "ws"
        n_frames = args.scenes * args.frames
        t_syn = gdrive(ws, "prepare-occ", "--source", "synthetic", "--scenes", str(args.scenes),
                       "--frames", str(args.frames), "--seed", "0", "--name", "demo")
        t_reuse = gdrive(ws, "prepare-occ", "--source", "synthetic", "--scenes", str(args.scenes),
                         "--frames", str(args.frames), "--seed", "0", "--name", "demo")
        ds = OccDataset.open("demo", ws)
        export = tmp / "occ3d-export"
        export_occ3d(ds, export)
        t_occ = gdrive(ws, "prepare-occ", "--source", "occ-folder", "--dataroot", str(export), "--name", "occ3d")
        t_occ_np = gdrive(ws, "prepare-occ", "--source", "occ-folder", "--dataroot", str(export), "--name", "occ3d-np",
                          "--no-previews")

        # Windows: the same (past 3, future 6) windows, read both ways, in one shuffled order.
        ds2 = OccDataset.open("occ3d", ws)
        t0 = time.perf_counter()
        cache = open_cache(ds2)
        t_pack = time.perf_counter() - t0
        win = ForecastWindows(cache, past=3, future=6)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(win))[: args.windows]
        paths = {}
        for s in ds2.scenes():
            for f in s.frames:
                paths[(s.name, f.index)] = f.path / "labels.npz"
        scene_names = cache.scene_names
        t0 = time.perf_counter()
        for i in order:
            item = win[int(i)]
        t_cache = time.perf_counter() - t0
        t0 = time.perf_counter()
        checked = 0
        for i in order:
            idx, _ = win.frame_indices(int(i))
            ps = [paths[(scene_names[cache.frame_scene[j]], int(cache.frame_index[j]))] for j in idx]
            occ = official_window(ps)
            if checked < 20:  # the two readers give the same windows
                assert np.array_equal(occ, win[int(i)]["occ"].numpy())
                checked += 1
        t_npz = time.perf_counter() - t0
        del item
        result = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                        "platform": platform.platform()},
            "synthetic": {"scenes": args.scenes, "frames_per_scene": args.frames, "frames": n_frames,
                          "seconds": round(t_syn, 2), "frames_per_s": round(n_frames / t_syn, 2),
                          "reuse_seconds": round(t_reuse, 2), "goal_seconds": 60.0,
                          "scope": "fresh `gdrive prepare-occ` process: imports, world generation, ray-cast masks, npz, previews"},
            "occ3d_files": {"frames": n_frames, "seconds": round(t_occ, 2), "frames_per_s": round(n_frames / t_occ, 2),
                            "seconds_no_previews": round(t_occ_np, 2),
                            "frames_per_s_no_previews": round(n_frames / t_occ_np, 2),
                            "scope": "fresh `gdrive prepare-occ --source occ-folder` process over Occ3D labels.npz files"},
            "windows": {"window": "3 past + current + 6 future", "count": int(len(order)),
                        "cache_pack_seconds": round(t_pack, 2),
                        "cache_windows_per_s": round(len(order) / t_cache, 1),
                        "npz_windows_per_s": round(len(order) / t_npz, 1),
                        "speedup": round(t_npz / t_cache, 1), "goal_speedup": 10.0,
                        "peer": "np.load(labels.npz)['semantics'] for each of the 10 frames (official loader)"},
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(args.out), json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

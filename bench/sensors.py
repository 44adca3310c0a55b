"""Sensor benchmark: camera and LiDAR rendering from occupancy, ours against open3d, side by side.

In one run, on the same synthetic occupancy frames ([200, 200, 16] semantics) and the default
nuScenes rig, this times:
  - camera: `render_cameras` for the 6 views at 256 x 512 (height x width) against open3d's
    Embree-backed `o3d.t.geometry.RaycastingScene` on a mesh of the exposed voxel faces (each
    occupied voxel face whose neighbour is free or outside the grid, 2 triangles, carrying the
    voxel's label), one ray per pixel centre per camera; a miss is background (FREE).
    Goals: ours >= 10 frames/s, >= 3x open3d, >= 99.5 % identical pixel labels.
  - lidar: one HDL-32E sweep (rig.lidar) with `lidar_sweep` against the same open3d
    scene; a hit is its voxel (open3d: the hit triangle's voxel), max_range applied to both.
    Goals: ours >= 50 sweeps/s, >= 3x open3d, >= 99.9 % identical hits.

The open3d time of a frame includes building the face mesh and the scene (BVH), since the
occupancy changes every frame; the ray tables of the fixed rig are built once for both sides
(ours caches them internally). Everything is warmed up first (numba JIT, torch, Embree), then
each frame is timed `--repeats` times and the median seconds per frame is reported. The open3d
time is also split into mesh build and scene build + cast. On CUDA, when present, the camera
renderer is timed there too with synchronisation. Writes bench/results/sensors.json atomically.

Run: .venv/bin/python bench/sensors.py [--frames 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numba
import numpy as np
import open3d as o3d
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geniedrive.pipelines.data.occ3d import FREE, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE  # noqa: E402
from geniedrive.pipelines.data.rig import Camera, Lidar, default_rig  # noqa: E402
from geniedrive.pipelines.data.synthetic.generate import SyntheticConfig, generate_scene  # noqa: E402
from geniedrive.pipelines.sensors.camera import render_cameras  # noqa: E402
from geniedrive.pipelines.sensors.lidar import lidar_sweep  # noqa: E402
from geniedrive.pipelines.data.raycast import cast_rays, lidar_rays  # noqa: E402
from geniedrive.pipelines.store.atomic import write_text_atomic  # noqa: E402

WIDTH, HEIGHT = 512, 256
GOALS = {"camera": {"fps": 10.0, "ratio": 3.0, "agreement": 0.995},
         "lidar": {"fps": 50.0, "ratio": 3.0, "agreement": 0.999}}
NO_HIT = -1
_INVALID = np.uint32(0xFFFFFFFF)  # open3d RaycastingScene.INVALID_ID

# --------------------------------------------------------------------------- open3d peer


def _quad_corners(axis: int, side: int) -> np.ndarray:
    """[4, 3] integer lattice offsets of the face of a voxel on `axis` at `side` (0: -, 1: +)."""
    u, v = [a for a in range(3) if a != axis]
    out = np.zeros((4, 3), np.int64)
    out[:, axis] = side
    out[:, u] = (0, 1, 1, 0)
    out[:, v] = (0, 0, 1, 1)
    return out


_FACES = [(axis, side, _quad_corners(axis, side)) for axis in range(3) for side in (0, 1)]
_PLANES = [np.asarray(RANGE_MIN[a] + np.arange(GRID_SHAPE[a] + 1) * VOXEL_SIZE, np.float32) for a in range(3)]


def voxel_face_mesh(semantics: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exposed faces of the occupied voxels as triangles, vectorised.

    Returns vertices [4F, 3] float32 (ego metres, one plane table so shared edges are
    bit-identical), triangles [2F, 3] uint32 and the flat voxel id of each triangle [2F] int64.
    """
    occ = semantics != FREE
    pad = np.pad(occ, 1)  # outside the grid counts as free
    verts, vids = [], []
    for axis, side, corners in _FACES:
        sl = [slice(1, -1)] * 3
        sl[axis] = slice(2, None) if side else slice(0, -2)
        ijk = np.nonzero(occ & ~pad[tuple(sl)])
        lattice = [ijk[a][:, None] + corners[None, :, a] for a in range(3)]  # [F, 4] per axis
        verts.append(np.stack([_PLANES[a][lattice[a]] for a in range(3)], axis=-1).reshape(-1, 3))
        vids.append(np.ravel_multi_index(ijk, GRID_SHAPE))
    vertices = np.concatenate(verts)
    vid = np.concatenate(vids)
    base = np.arange(len(vid), dtype=np.uint32)[:, None] * 4
    tris = np.stack([base + np.array([0, 1, 2], np.uint32), base + np.array([0, 2, 3], np.uint32)], axis=1)
    return vertices, tris.reshape(-1, 3), np.repeat(vid, 2)


def open3d_hits(semantics: np.ndarray, rays: o3d.core.Tensor, max_t: float = np.inf) -> tuple[np.ndarray, dict]:
    """Build the face mesh and a RaycastingScene for this frame, cast `rays`: hit voxel ids [R].

    Returns the flat voxel id of each ray's first hit (NO_HIT for a miss or beyond max_t) and
    the split of the time: numpy face mesh, scene + BVH build (forced by a one-ray cast), cast.
    """
    t0 = time.perf_counter()
    vertices, tris, vid = voxel_face_mesh(semantics)
    t1 = time.perf_counter()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor.from_numpy(vertices), o3d.core.Tensor.from_numpy(tris))
    scene.cast_rays(rays[:1])  # the scene (Embree BVH) is committed on the first cast
    t2 = time.perf_counter()
    ans = scene.cast_rays(rays)
    prim = ans["primitive_ids"].numpy()
    t_hit = ans["t_hit"].numpy()
    hit = (prim != _INVALID) & (t_hit <= max_t)
    out = np.where(hit, vid[np.where(hit, prim, 0)], NO_HIT)
    t3 = time.perf_counter()
    return out, {"mesh_s": t1 - t0, "scene_s": t2 - t1, "cast_s": t3 - t2, "triangles": len(tris)}


def voxel_labels(semantics: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """Label of each hit voxel id, FREE (background) for NO_HIT."""
    return np.where(hits >= 0, semantics.reshape(-1)[np.maximum(hits, 0)], FREE).astype(np.uint8)


def camera_ray_table(cameras: list[Camera], width: int, height: int) -> o3d.core.Tensor:
    """[V*H*W, 6] float32 rays (camera origin, ego-frame direction) through every pixel centre."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    rows = []
    for cam in cameras:
        c = cam.scaled(width, height)
        d = c.sensor_to_ego[:3, :3] @ np.linalg.solve(c.intrinsic, pix)
        o = np.broadcast_to(c.sensor_to_ego[:3, 3, None], d.shape)
        rows.append(np.concatenate([o, d]).T)
    return o3d.core.Tensor.from_numpy(np.ascontiguousarray(np.concatenate(rows), dtype=np.float32))


def lidar_ray_table(lidar: Lidar) -> o3d.core.Tensor:
    origins, dirs = lidar_rays(lidar)  # unit directions: t_hit is metres
    return o3d.core.Tensor.from_numpy(np.ascontiguousarray(np.concatenate([origins, dirs], 1), dtype=np.float32))


# --------------------------------------------------------------------------- ours


def ours_camera(semantics: np.ndarray, cameras: list[Camera], device: str = "cpu") -> np.ndarray:
    """Labels [V*H*W] uint8 from `render_cameras` (synchronised on CUDA)."""
    labels = render_cameras(semantics, cameras, WIDTH, HEIGHT, device=device).labels
    if labels.is_cuda:
        torch.cuda.synchronize(labels.device)
    return labels.reshape(-1).cpu().numpy()


def _dda_hits(lidar: Lidar) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hit voxel ids [R] (NO_HIT for none) and distances [R] of one sweep by `cast_rays`."""
    origins, dirs = lidar_rays(lidar)

    def hits(sem: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx, dist = cast_rays(sem != FREE, origins, dirs, lidar.max_range)
        flat = np.ravel_multi_index(tuple(np.maximum(idx.T, 0)), GRID_SHAPE)
        return np.where(idx[:, 0] >= 0, flat, NO_HIT), dist

    return hits


def _sweep_hits(lidar: Lidar) -> Callable[[np.ndarray], np.ndarray]:
    """Hit voxel ids [R] of a `lidar_sweep`, checked against the DDA it is built on.

    A sweep holds points on the entry faces, not voxel indices, and recovering the voxel from a
    float32 point is ambiguous at voxel edges; so the ids are the DDA's (same rays, same
    max_range), after asserting that the sweep returns exactly the DDA's hit rays with the
    labels of the DDA's hit voxels and its ranges.
    """
    dda = _dda_hits(lidar)

    def hits(sem: np.ndarray) -> np.ndarray:
        sweep = lidar_sweep(sem, lidar)
        ids, dist = dda(sem)
        hit = ids != NO_HIT
        checks = {"hit rays": np.array_equal(sweep.ray_index, np.flatnonzero(hit)),
                  "labels": np.array_equal(sweep.label, sem.reshape(-1)[ids[hit]]),
                  "ranges": np.allclose(sweep.range, dist[hit], atol=1e-4)}
        if not all(checks.values()):
            raise RuntimeError(f"lidar_sweep differs from cast_rays in: {[k for k, ok in checks.items() if not ok]}")
        return ids

    return hits


def ours_lidar_fn(lidar: Lidar) -> tuple[Callable[[np.ndarray], object], Callable[[np.ndarray], np.ndarray], str]:
    """(timed call, hit voxel ids [R] of one frame for that call, what is timed)."""
    return ((lambda sem: lidar_sweep(sem, lidar)), _sweep_hits(lidar),
            "geniedrive.pipelines.sensors.lidar.lidar_sweep(semantics, rig.lidar): DDA + points, labels, intensity; "
            "hit voxels checked equal to cast_rays' (rays, labels, ranges)")


# --------------------------------------------------------------------------- timing


def median_seconds(fn: Callable[[np.ndarray], object], frames: np.ndarray, repeats: int) -> float:
    """Median over frames x repeats of the wall seconds of fn(frame); one warm-up call first."""
    fn(frames[0])
    times = []
    for _ in range(repeats):
        for sem in frames:
            t = time.perf_counter()
            fn(sem)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def split_median(frames: np.ndarray, rays: o3d.core.Tensor, max_t: float) -> dict:
    parts = [open3d_hits(sem, rays, max_t)[1] for sem in frames]
    out = {k: round(statistics.median(p[k] for p in parts), 4) for k in ("mesh_s", "scene_s", "cast_s")}
    return {**out, "triangles": int(statistics.median(p["triangles"] for p in parts))}


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, int]:
    same = sum(int((x == y).sum()) for x, y in zip(a, b))
    total = sum(x.size for x in a)
    return same / total, total - same


def summary(ours_s: float, peer_s: float, agree: float, differ: int, goals: dict, unit: str) -> dict:
    fps, peer_fps = 1.0 / ours_s, 1.0 / peer_s
    ratio = peer_s / ours_s
    return {f"ours_{unit}_per_s": round(fps, 2), f"open3d_{unit}_per_s": round(peer_fps, 2),
            "ours_s": round(ours_s, 4), "open3d_s": round(peer_s, 4), "ratio": round(ratio, 3),
            "agreement": round(agree, 6), "differing": differ,
            "goals": goals, "met": {"fps": fps >= goals["fps"], "ratio": ratio >= goals["ratio"],
                                    "agreement": agree >= goals["agreement"]}}


# --------------------------------------------------------------------------- benchmark


def bench_camera(frames: np.ndarray, cameras: list[Camera], repeats: int) -> dict:
    rays = camera_ray_table(cameras, WIDTH, HEIGHT)
    ours = [ours_camera(sem, cameras) for sem in frames]
    peer = [voxel_labels(sem, open3d_hits(sem, rays)[0]) for sem in frames]
    agree, differ = agreement(ours, peer)
    t_ours = median_seconds(lambda s: ours_camera(s, cameras), frames, repeats)
    t_peer = median_seconds(lambda s: open3d_hits(s, rays), frames, repeats)
    out = {"views": len(cameras), "height": HEIGHT, "width": WIDTH, "rays_per_frame": int(rays.shape[0]),
           **summary(t_ours, t_peer, agree, differ, GOALS["camera"], "frames"),
           "open3d_split": split_median(frames, rays, np.inf),
           "hit_share": round(float(np.mean([(lab != FREE).mean() for lab in ours])), 4),
           "agreement_scope": "identical label per pixel, background (FREE) included"}
    out["cuda"] = bench_camera_cuda(frames, cameras, repeats)
    return out


def bench_camera_cuda(frames: np.ndarray, cameras: list[Camera], repeats: int) -> dict | None:
    if not torch.cuda.is_available():
        return None
    t = median_seconds(lambda s: ours_camera(s, cameras, "cuda"), frames, repeats)
    same = all(np.array_equal(ours_camera(s, cameras, "cuda"), ours_camera(s, cameras)) for s in frames)
    return {"device": torch.cuda.get_device_name(), "frames_per_s": round(1.0 / t, 2), "seconds": round(t, 5),
            "identical_to_cpu": same, "scope": "render_cameras on CUDA, synchronised, labels copied back"}


def bench_lidar(frames: np.ndarray, lidar: Lidar, repeats: int) -> dict:
    rays = lidar_ray_table(lidar)
    timed_fn, hits_fn, scope = ours_lidar_fn(lidar)
    ours = [hits_fn(sem) for sem in frames]
    peer = [open3d_hits(sem, rays, lidar.max_range)[0] for sem in frames]
    agree, differ = agreement(ours, peer)
    t_ours = median_seconds(timed_fn, frames, repeats)
    t_peer = median_seconds(lambda s: open3d_hits(s, rays, lidar.max_range), frames, repeats)
    t_dda = median_seconds(_dda_hits(lidar), frames, repeats)
    return {"rays_per_sweep": int(rays.shape[0]), "max_range": lidar.max_range, "ours_scope": scope,
            "ours_dda_only_s": round(t_dda, 4), "ours_dda_only_sweeps_per_s": round(1.0 / t_dda, 2),
            **summary(t_ours, t_peer, agree, differ, GOALS["lidar"], "sweeps"),
            "open3d_split": split_median(frames, rays, lidar.max_range),
            "hit_rate": round(float(np.mean([(h >= 0).mean() for h in ours])), 4),
            "agreement_scope": "same first-hit voxel, or both no hit within max_range"}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
            "open3d": o3d.__version__, "numpy": np.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def print_table(res: dict) -> None:
    print(f"{'':8} {'ours/s':>9} {'open3d/s':>9} {'ratio':>7} {'agree':>9}  goals met")
    for key, unit in (("camera", "frames"), ("lidar", "sweeps")):
        r = res[key]
        met = " ".join(f"{k}={'yes' if v else 'NO'}" for k, v in r["met"].items())
        print(f"{key:8} {r[f'ours_{unit}_per_s']:9.2f} {r[f'open3d_{unit}_per_s']:9.2f} {r['ratio']:7.3f} "
              f"{100 * r['agreement']:8.4f}%  {met}")
    if res["camera"]["cuda"]:
        print(f"camera on {res['camera']['cuda']['device']}: {res['camera']['cuda']['frames_per_s']:.1f} frames/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "sensors.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    rig = default_rig()
    frames = generate_scene(0, 0, SyntheticConfig(frames=args.frames), rig).semantics
    result = {"machine": machine(),
              "frames": {"source": f"synthetic generate_scene(0, 0, frames={args.frames})", "count": len(frames),
                         "occupied_share": round(float((frames != FREE).mean()), 4)},
              "timing": f"median wall seconds per frame over {len(frames)} frames x {args.repeats} repeats, after warm-up; "
                        "open3d includes face-mesh and scene (BVH) build per frame; rig ray tables built once",
              "camera": bench_camera(frames, rig.cameras, args.repeats),
              "lidar": bench_lidar(frames, rig.lidar, args.repeats)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print_table(result)


if __name__ == "__main__":
    main()

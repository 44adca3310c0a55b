"""Ego motion in occupancy space: warping a grid by a known motion (the ego-warp baseline) and
recovering the motion between two grids by registering their static classes (control adherence).

Poses are planar (x, y, yaw) in the ego frame (x forward, y left); grids are [200, 200, 16] labels
with voxel centres at range_min + (index + 0.5) * 0.4.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from ..data.occ3d import RANGE_MIN, VOXEL_SIZE
from ..geometry import planar_pose, wrap_angle, yaw_of
from ..data.warp import warp_labels

STATIC_CLASSES = tuple(range(11, 17))  # driveable_surface .. vegetation: they do not move


def warp_occupancy(occ: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The grid `occ` [X, Y, Z] (in ego frame A) seen from frame B, where `pose` [4, 4] is B's ego
    in A: nearest-voxel lookup, voxels from outside A become free. The same code as the
    forecaster's observation fusion (`warp_labels`), so baseline and model see one warp."""
    warped, _ = warp_labels(torch.from_numpy(np.ascontiguousarray(occ))[None],
                            torch.from_numpy(np.asarray(pose, dtype=np.float64))[None])
    return warped[0].numpy()


@numba.njit(cache=True, parallel=True)
def _scores(px, py, pz, plab, ref, cands):  # pragma: no cover - compiled
    """For each candidate (x, y, yaw): points that land on a voxel of `ref` with their label, minus
    those that land inside `ref` on another label (points leaving the grid count neither way).
    Counting matches alone favours small motions, which keep more points inside the grid."""
    nx, ny, nz = ref.shape
    out = np.zeros(cands.shape[0], np.int64)
    for c in numba.prange(cands.shape[0]):
        tx, ty, yaw = cands[c, 0], cands[c, 1], cands[c, 2]
        co, si = math.cos(yaw), math.sin(yaw)
        n = 0
        for i in range(px.shape[0]):
            ax = co * px[i] - si * py[i] + tx
            ay = si * px[i] + co * py[i] + ty
            ix = int(math.floor((ax - RANGE_MIN[0]) / VOXEL_SIZE))
            iy = int(math.floor((ay - RANGE_MIN[1]) / VOXEL_SIZE))
            if 0 <= ix < nx and 0 <= iy < ny:
                n += 1 if ref[ix, iy, pz[i]] == plab[i] else -1
        out[c] = n
    return out


def _grid(lo, hi, step):
    return np.arange(lo, hi + 1e-9, step)


def _best(px, py, pz, plab, ref, xs, ys, yaws):
    cands = np.stack(np.meshgrid(xs, ys, yaws, indexing="ij"), -1).reshape(-1, 3)
    scores = _scores(px, py, pz, plab, ref, cands)
    return cands[int(np.argmax(scores))], int(scores.max())


def register_static(moving: np.ndarray, reference: np.ndarray, around: np.ndarray | None = None,
                    max_translation: float = 45.0, max_yaw: float = math.radians(100), max_points: int = 6000,
                    window: tuple[float, float] = (12.0, math.radians(45))) -> tuple[np.ndarray, float]:
    """Recover B's ego pose in A from grids `moving` (seen from B) and `reference` (seen from A).

    Static-class voxels of `moving` are moved by candidate planar poses and scored by how many land
    on a voxel of `reference` with the same label, less those landing on another label; coarse-to-fine
    grid search (1.2 m / 3 deg, then 0.4 m / 1 deg, then 0.1 m / 0.25 deg). The coarse stage covers x,
    y in ±max_translation and yaw in ±max_yaw; with `around` (the commanded pose [4, 4], what control
    adherence compares with) it first covers only ±window[0] m and ±window[1] around it, about 30
    times fewer candidates, and falls back to the whole range when the best candidate lies on that
    window's edge (the forecast is further off than the window, or the peak is outside it). Returns
    (pose [4, 4], net score share: (matches - mismatches) / points, floored at 0).
    """
    static = np.isin(moving, STATIC_CLASSES)
    idx = np.argwhere(static)
    if len(idx) == 0:
        return np.eye(4), 0.0
    # Surface voxels carry the structure; subsample deterministically to bound the cost.
    fine = idx[:: max(1, len(idx) // max_points)]
    coarse = idx[:: max(1, len(idx) // 1500)]

    def split(ix):
        return (RANGE_MIN[0] + (ix[:, 0] + 0.5) * VOXEL_SIZE, RANGE_MIN[1] + (ix[:, 1] + 0.5) * VOXEL_SIZE,
                ix[:, 2].astype(np.int64), moving[ix[:, 0], ix[:, 1], ix[:, 2]].astype(np.uint8))

    ref = np.ascontiguousarray(reference, np.uint8)
    pc = split(coarse)
    steps = (1.2, math.radians(3))
    best = None
    if around is not None:
        cx, cy, cyaw = float(around[0, 3]), float(around[1, 3]), yaw_of(around)
        span, yspan = window
        xs, ys, yaws = cx + _grid(-span, span, steps[0]), cy + _grid(-span, span, steps[0]), cyaw + _grid(-yspan, yspan, steps[1])
        best, _ = _best(*pc, ref, xs, ys, yaws)
        on_edge = best[0] in (xs[0], xs[-1]) or best[1] in (ys[0], ys[-1]) or best[2] in (yaws[0], yaws[-1])
        if on_edge:
            best = None
    if best is None:
        best, _ = _best(*pc, ref, _grid(-max_translation, max_translation, steps[0]),
                        _grid(-max_translation, max_translation, steps[0]), _grid(-max_yaw, max_yaw, steps[1]))
    pf = split(fine)
    for span, step, yspan, ystep in ((1.2, 0.4, math.radians(3), math.radians(1)), (0.4, 0.1, math.radians(1), math.radians(0.25))):
        best, score = _best(*pf, ref, best[0] + _grid(-span, span, step), best[1] + _grid(-span, span, step),
                            best[2] + _grid(-yspan, yspan, ystep))
    return planar_pose(*best), max(score, 0) / len(fine)


def motion_error(recovered: np.ndarray, commanded: np.ndarray) -> tuple[float, float]:
    """Translation error (m) and absolute yaw error (rad) between two [4, 4] poses."""
    dt = float(np.hypot(*(recovered[:2, 3] - commanded[:2, 3])))
    return dt, float(abs(wrap_angle(yaw_of(recovered) - yaw_of(commanded))))

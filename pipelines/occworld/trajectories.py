"""Ego trajectories that drive `gdrive forecast`: named manoeuvres, waypoint files, or the log.

Every trajectory is a list of planar poses (x, y, yaw) of the ego at the future keyframes
t = 0.5 s, 1.0 s, ... in the start ego frame (x forward, y left), as [H, 4, 4] transforms. Named
manoeuvres follow the road on synthetic scenes (pipelines/data/synthetic/routes.py); here are the
fixed shapes, used on other sources and under the `fixed_` names everywhere.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from ..data.controls import commands
from ..errors import BadInput, TrajectoryTooShort
from ..geometry import planar_pose
from ..limits import MAX_HORIZON, MAX_SPEED, read_text_file
from ..data.scene import KEYFRAME_DT

TURN_RADIUS_M = 10.0  # a 90° urban turn
LANE_WIDTH_M = 3.5
LANE_CHANGE_S = 3.0
STOP_DECEL = 3.0  # m/s², a comfortable stop
SUBSTEPS = 20  # integration steps per keyframe interval


def _integrate(speed_fn, yaw_rate_fn, horizon: int) -> np.ndarray:
    """Unicycle integration: [horizon, 3] (x, y, yaw) at each keyframe."""
    x = y = yaw = 0.0
    out = []
    dt = KEYFRAME_DT / SUBSTEPS
    t = 0.0
    for _ in range(horizon):
        for _ in range(SUBSTEPS):
            v, w = speed_fn(t + 0.5 * dt), yaw_rate_fn(t, yaw)  # midpoint speed: exact for constant deceleration
            x += v * math.cos(yaw + 0.5 * w * dt) * dt
            y += v * math.sin(yaw + 0.5 * w * dt) * dt
            yaw += w * dt
            t += dt
        out.append((x, y, yaw))
    return np.asarray(out)


def named(name: str, speed: float, horizon: int) -> np.ndarray:
    """A fixed-shape manoeuvre at `speed` m/s (a name of NAMED, or of SHAPES: `fixed_` + it):
    [horizon, 3] (x, y, yaw), the same on every road."""
    v = float(speed)
    name = name[len(SHAPE_PREFIX):] if name.startswith(SHAPE_PREFIX) else name
    if name == "straight":
        return _integrate(lambda t: v, lambda t, yaw: 0.0, horizon)
    if name in ("turn_left", "turn_right"):
        sign = 1.0 if name == "turn_left" else -1.0
        # Constant-radius arc until the heading has turned 90°, then straight on.
        return _integrate(lambda t: v, lambda t, yaw: sign * v / TURN_RADIUS_M if abs(yaw) < math.pi / 2 else 0.0, horizon)
    if name in ("lane_change_left", "lane_change_right"):
        sign = 1.0 if name == "lane_change_left" else -1.0
        times = KEYFRAME_DT * np.arange(1, horizon + 1)
        s = np.clip(times / LANE_CHANGE_S, 0, 1)
        lat = sign * LANE_WIDTH_M * (1 - np.cos(np.pi * s)) / 2
        slope = sign * LANE_WIDTH_M * np.pi / (2 * LANE_CHANGE_S) * np.sin(np.pi * s) / max(v, 1e-6)
        return np.stack([v * times, lat, np.arctan(slope) * (v > 0)], -1)
    if name == "stop":
        return _integrate(lambda t: max(0.0, v - STOP_DECEL * t), lambda t, yaw: 0.0, horizon)
    raise unknown_trajectory(name)


NAMED = ("straight", "turn_left", "turn_right", "stop", "lane_change_left", "lane_change_right")
# The same manoeuvres as fixed shapes, whatever the road: a 10 m radius 90° arc, a 3.5 m shift in
# 3 s, 3 m/s² braking. On synthetic scenes the NAMED ones follow the road graph instead.
SHAPE_PREFIX = "fixed_"
SHAPES = tuple(SHAPE_PREFIX + n for n in NAMED)


def unknown_trajectory(name: str) -> BadInput:
    return BadInput(f"--traj '{name}': unknown trajectory; choose one of {', '.join(NAMED)}, gt, the fixed shapes "
                    f"{', '.join(SHAPES)}, or a waypoint file (.csv/.json)")


def read_waypoints(path: Path) -> np.ndarray:
    """A waypoint file -> [N, 4] (t, x, y, yaw in radians or NaN). CSV with a header, or JSON: a
    list of objects or {"waypoints": [...]}; columns t (s), x, y (m, start ego frame)[, yaw_deg
    (degrees counter-clockwise from forward, as `edit --at`)]. A bare `yaw` column is refused: its
    unit would be a guess (it was radians before 0.1), and a wrong guess turns the route silently."""
    text = read_text_file(path, "waypoint file", "--traj")  # bounded, UTF-8 (a byte-order mark is fine)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            rows = data["waypoints"] if isinstance(data, dict) else data
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise BadInput(f"--traj {path}: JSON must be a list of {{t, x, y[, yaw_deg]}} objects (or {{\"waypoints\": [...]}})")
        else:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"--traj {path}: not a waypoint file ({type(exc).__name__}: {exc}); see the README for the format") from None
    if not rows:
        raise BadInput(f"--traj {path}: no waypoints; give rows of t, x, y[, yaw_deg]")
    missing = [c for c in ("t", "x", "y") if c not in rows[0]]
    if missing:
        raise BadInput(f"--traj {path}: missing column(s) {', '.join(missing)}; the columns are t, x, y[, yaw_deg]")
    if "yaw" in rows[0]:
        raise BadInput(f"--traj {path}: column 'yaw' has no unit; name it yaw_deg and give degrees counter-clockwise "
                       "from forward (a file in radians: multiply by 57.2958)")
    try:
        arr = np.array([[float(r["t"]), float(r["x"]), float(r["y"]),
                         math.radians(float(r["yaw_deg"])) if r.get("yaw_deg") not in (None, "") else np.nan]
                        for r in rows], np.float64)
    except (TypeError, ValueError, KeyError) as exc:
        raise BadInput(f"--traj {path}: a waypoint value is not a number ({exc}); every row needs t, x, y") from None
    if not np.isfinite(arr[:, :3]).all() or np.isinf(arr[:, 3]).any():
        row = int(np.argwhere(~np.isfinite(arr[:, :3]).all(1) | np.isinf(arr[:, 3]))[0, 0]) + 1
        raise BadInput(f"--traj {path}: waypoint row {row} has a NaN or infinite value; give finite numbers")
    if (np.diff(arr[:, 0]) <= 0).any():
        row = int(np.argwhere(np.diff(arr[:, 0]) <= 0)[0, 0]) + 2
        raise BadInput(f"--traj {path}: times must increase strictly (row {row}); sort the waypoints by t")
    if arr[0, 0] < 0:
        raise BadInput(f"--traj {path}: t starts at {arr[0, 0]}; times are seconds after the start frame (>= 0)")
    return arr


def from_waypoints(wp: np.ndarray, horizon: int | None, where: str) -> np.ndarray:
    """Resample waypoints at the keyframes: [H, 3]. The start pose (t = 0) is the origin."""
    if wp[0, 0] > 0:
        wp = np.vstack([[0.0, 0.0, 0.0, 0.0], wp])
    last = int(math.floor(wp[-1, 0] / KEYFRAME_DT + 1e-9))
    if horizon is None:
        if last > MAX_HORIZON:
            raise BadInput(f"--traj {where}: the waypoints end at t = {wp[-1, 0]:g} s ({last:,} keyframes), beyond the "
                           f"limit of {MAX_HORIZON} keyframes ({MAX_HORIZON * KEYFRAME_DT:g} s); pass --horizon "
                           f"{MAX_HORIZON} or less")
        horizon = last
    if horizon < 1:
        raise BadInput(f"--traj {where}: the waypoints end at t = {wp[-1, 0]} s, before the first keyframe (0.5 s)")
    if horizon > last:
        raise TrajectoryTooShort(f"--horizon {horizon}: the waypoints in {where} end at t = {wp[-1, 0]} s (horizon "
                                 f"{last}); extend the file or pass --horizon {last}", available=last)
    times = KEYFRAME_DT * np.arange(1, horizon + 1)
    x, y = np.interp(times, wp[:, 0], wp[:, 1]), np.interp(times, wp[:, 0], wp[:, 2])
    if np.isnan(wp[:, 3]).any():
        # Heading of the path: the direction to the next keyframe (the last repeats).
        px, py = np.r_[0.0, x], np.r_[0.0, y]
        yaw = np.arctan2(np.diff(py), np.diff(px))
        moving = np.hypot(np.diff(px), np.diff(py)) > 1e-3
        yaw = np.where(moving, yaw, np.nan)
        yaw = np.nan_to_num(_ffill(yaw), nan=0.0)
    else:
        yaw = np.interp(times, wp[:, 0], np.unwrap(wp[:, 3]))
    check_plausible(x, y, where)
    return np.stack([x, y, yaw], -1)


def check_plausible(x: np.ndarray, y: np.ndarray, where: str) -> None:
    """A car covers at most MAX_SPEED m/s: refuse waypoints that jump further between keyframes."""
    step = np.hypot(np.diff(np.r_[0.0, x]), np.diff(np.r_[0.0, y]))
    fast = np.flatnonzero(~(step <= MAX_SPEED * KEYFRAME_DT * (1 + 1e-9)))
    if len(fast):
        i = int(fast[0])
        raise BadInput(f"--traj {where}: the ego would move {step[i]:.3g} m between t = {i * KEYFRAME_DT:g} s and "
                       f"{(i + 1) * KEYFRAME_DT:g} s ({step[i] / KEYFRAME_DT:.3g} m/s); waypoints are metres in the "
                       f"start ego frame and at most {MAX_SPEED:g} m/s apart")


def _ffill(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    for i in range(1, len(out)):
        if np.isnan(out[i]):
            out[i] = out[i - 1]
    return out


def poses_of(xyyaw: np.ndarray) -> np.ndarray:
    """[H, 3] -> [H, 4, 4] ego poses in the start frame."""
    return np.stack([planar_pose(*p) for p in xyyaw]) if len(xyyaw) else np.zeros((0, 4, 4))


def commands_of(poses: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    """Command index per forecast step ([H]): the dataset's ±2 m rule at +3 s applied to the
    trajectory itself. `poses` [H, 4, 4] in the start frame; `extra` poses past the horizon let
    the last steps look 3 s ahead. Step i starts at pose i - 1 (the start pose for i = 0)."""
    allp = np.concatenate([np.eye(4)[None], poses] + ([] if extra is None else [extra]))
    stamps = (np.arange(len(allp)) * KEYFRAME_DT * 1e6).astype(np.int64)
    return commands(allp, stamps)[:len(poses)]

"""Driving controls derived from ego poses.

Per step t -> t+1: Δx, Δy, Δyaw in the ego frame at t, speed (m/s) and yaw rate (rad/s). The
command one-hot [right, left, straight] follows the ±2 m rule: the ego's lateral offset at +3 s
(6 keyframes at 2 Hz) in the current ego frame is >= 2 m to the right -> right, >= 2 m to the
left -> left, else straight. Near the scene end the last available future frame is used.
"""

from __future__ import annotations

import numpy as np

from ..geometry import wrap_angle, yaw_of

COMMANDS = ("right", "left", "straight")
COMMAND_INDEX = {c: i for i, c in enumerate(COMMANDS)}
COMMAND_HORIZON_S = 3.0
COMMAND_THRESHOLD_M = 2.0


def relative_poses(ego_to_global: np.ndarray) -> np.ndarray:
    """Transform of frame t+1 in the ego frame of t: inv(P_t) @ P_{t+1}, [T-1, 4, 4]."""
    p = np.asarray(ego_to_global, dtype=np.float64)
    return np.linalg.inv(p[:-1]) @ p[1:]


def step_controls(ego_to_global: np.ndarray, timestamps_us: np.ndarray) -> np.ndarray:
    """Controls per frame, [T, 5] float32: Δx, Δy, Δyaw to the next frame, speed, yaw rate.

    The last frame repeats the previous step (it has no next frame); a one-frame scene is zeros.
    """
    t = len(ego_to_global)
    out = np.zeros((t, 5), np.float32)
    if t < 2:
        return out
    rel = relative_poses(ego_to_global)
    dt = np.diff(np.asarray(timestamps_us, dtype=np.float64)) * 1e-6
    dyaw = wrap_angle(yaw_of(rel))
    out[:-1, 0] = rel[:, 0, 3]
    out[:-1, 1] = rel[:, 1, 3]
    out[:-1, 2] = dyaw
    out[:-1, 3] = np.hypot(rel[:, 0, 3], rel[:, 1, 3]) / dt
    out[:-1, 4] = dyaw / dt
    out[-1] = out[-2]
    return out


def commands(ego_to_global: np.ndarray, timestamps_us: np.ndarray) -> np.ndarray:
    """Command index per frame ([T] int64, into COMMANDS) by the ±2 m rule at +3 s."""
    p = np.asarray(ego_to_global, dtype=np.float64)
    ts = np.asarray(timestamps_us, dtype=np.int64)
    t = len(p)
    out = np.full(t, COMMAND_INDEX["straight"], np.int64)
    horizon_us = int(COMMAND_HORIZON_S * 1e6)
    for i in range(t):
        # The frame closest to +3 s, or the last one the scene has.
        j = int(np.searchsorted(ts, ts[i] + horizon_us - 250_000))
        j = min(j, t - 1)
        if j == i:
            continue
        lateral = (np.linalg.inv(p[i]) @ p[j])[1, 3]  # +y is left in the ego frame
        if lateral >= COMMAND_THRESHOLD_M:
            out[i] = COMMAND_INDEX["left"]
        elif lateral <= -COMMAND_THRESHOLD_M:
            out[i] = COMMAND_INDEX["right"]
    return out


def command_one_hot(cmd: np.ndarray) -> np.ndarray:
    """[T] command indices -> [T, 3] float32 one-hot [right, left, straight]."""
    return np.eye(len(COMMANDS), dtype=np.float32)[np.asarray(cmd)]

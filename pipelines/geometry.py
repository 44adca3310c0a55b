"""Rigid transforms: quaternions (w, x, y, z), 4x4 poses, yaw."""

from __future__ import annotations

import numpy as np


def quat_to_matrix(q) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> 3x3 rotation matrix."""
    w, x, y, z = (float(v) for v in q)
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix -> unit quaternion (w, x, y, z) with w >= 0."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def pose_matrix(rotation: np.ndarray, translation) -> np.ndarray:
    """3x3 rotation (or quaternion wxyz) + translation -> 4x4 homogeneous transform."""
    rot = np.asarray(rotation, dtype=np.float64)
    if rot.shape == (4,):
        rot = quat_to_matrix(rot)
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = np.asarray(translation, dtype=np.float64)
    return out


def planar_pose(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """Pose of a frame at (x, y, z) turned by `yaw` about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return pose_matrix(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), [x, y, z])


def yaw_of(pose: np.ndarray) -> np.ndarray:
    """Heading about +z of one or many 4x4 poses ([..., 4, 4] -> [...])."""
    pose = np.asarray(pose)
    return np.arctan2(pose[..., 1, 0], pose[..., 0, 0])


def wrap_angle(a):
    """Angle(s) wrapped to (-pi, pi]."""
    return -((-np.asarray(a) + np.pi) % (2 * np.pi) - np.pi)


def is_rotation(r: np.ndarray, tol: float = 1e-3) -> bool:
    """True when `r` is orthonormal with determinant +1 (a proper rotation)."""
    r = np.asarray(r, dtype=np.float64)
    return (
        r.shape == (3, 3)
        and bool(np.all(np.isfinite(r)))
        and np.allclose(r @ r.T, np.eye(3), atol=tol)
        and abs(np.linalg.det(r) - 1.0) < tol
    )

"""Boxes as poses and the voxels a pose covers: the geometry shared by every edit.

Boxes are [x, y, z, l, w, h, yaw] (centre, size, heading) as in `scene.json`; poses are planar
4x4 box->frame transforms (objects stand upright: the instance table keeps the heading only).
Voxel (i, j, k) has its centre at RANGE_MIN + (index + 0.5) * VOXEL_SIZE in the ego frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.occ3d import GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from ..geometry import planar_pose, yaw_of

_SIGNS = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)], np.float64) * 2 - 1  # [8, 3]


@dataclass
class Placed:
    """Voxels of one object in one frame: indices [n, 3] (int64, inside the grid), labels [n] uint8."""

    ijk: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For fancy indexing of a [200, 200, 16] grid."""
        return self.ijk[:, 0], self.ijk[:, 1], self.ijk[:, 2]

    def shifted(self, dk: int) -> "Placed":
        """The same voxels `dk` layers up (negative: down), dropping any that leave the grid."""
        ijk = self.ijk.copy()
        ijk[:, 2] += dk
        keep = (ijk[:, 2] >= 0) & (ijk[:, 2] < GRID_SHAPE[2])
        return Placed(ijk[keep], self.labels[keep])


def box_pose(box: np.ndarray) -> np.ndarray:
    """[7] box -> 4x4 planar box->frame pose."""
    x, y, z, _, _, _, yaw = (float(v) for v in box)
    return planar_pose(x, y, yaw, z)


def box_of(pose: np.ndarray, size: np.ndarray) -> np.ndarray:
    """4x4 planar pose + [3] size (l, w, h) -> [7] box."""
    return np.array([*pose[:3, 3], *size, float(yaw_of(pose))], np.float64)


def voxel_centres(ijk: np.ndarray) -> np.ndarray:
    """[n, 3] voxel indices -> [n, 3] ego-frame centres (metres)."""
    return RANGE_MIN + (np.asarray(ijk, np.float64) + 0.5) * VOXEL_SIZE


def window_centres(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Voxels whose centres may lie in the hull of `corners` [8, 3] (ego metres), clipped to the grid.

    Returns (ijk [n, 3] int64, centres [n, 3] float64), or None when the window misses the grid.
    """
    lo = np.floor((corners.min(axis=0) - RANGE_MIN) / VOXEL_SIZE - 0.5).astype(np.int64)
    hi = np.ceil((corners.max(axis=0) - RANGE_MIN) / VOXEL_SIZE - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array(GRID_SHAPE) - 1)
    if np.any(hi < lo):
        return None
    axes = [np.arange(lo[d], hi[d] + 1) for d in range(3)]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return ijk, voxel_centres(ijk)


def corners(pose: np.ndarray, half: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """[8, 3] corners of the box of half-extents `half` [3] around `centre` (local, default 0),
    taken through the 4x4 `pose`."""
    local = _SIGNS * half + (0.0 if centre is None else centre)
    return local @ pose[:3, :3].T + pose[:3, 3]


def to_local(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points [n, 3] in the frame `pose` maps into -> the pose's own frame (inverse rigid transform)."""
    return (points - pose[:3, 3]) @ pose[:3, :3]


"""Object shapes that can be placed at any pose: class-typical boxes and shapes cut from a frame.

`BoxShape` covers exactly the voxels whose centres lie inside the box (the synthetic source's
rule). `CutShape` keeps an object's voxels as they were labelled in one frame (a crop of that
frame's grid plus the object's box pose in it) and places them by nearest-neighbour resampling of
the rigid transform from the old pose to the new one: every target voxel centre is taken back into
the crop and reads the voxel it falls in. Mapping target -> source (not source -> target) leaves
no holes at any rotation, and a translation by whole voxels copies the object exactly.

`clearance` is how many layers the object's lowest voxel sits above the ground's top layer (1 when
it stands on the ground, 0 when its voxels replace the ground layer, as in some Occ3D labels);
placements keep it, so an inserted object stands on the ground the way the dataset's objects do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.occ3d import CLASS_INDEX, FREE, RANGE_MIN, VOXEL_SIZE
from ..data.synthetic.config import BOX_BOTTOM_Z  # a fresh box stands as a synthetic one (seating then snaps it)
from .placement import Placed, corners, to_local, window_centres

# Class-typical sizes (length along the heading, width, height; metres), close to the nuScenes
# mean box sizes. Barriers are modelled as long along their heading.
CLASS_SIZES: dict[str, tuple[float, float, float]] = {
    "others": (1.0, 1.0, 1.0),
    "barrier": (2.5, 0.5, 1.0),
    "bicycle": (1.7, 0.6, 1.3),
    "bus": (11.0, 2.9, 3.5),
    "car": (4.6, 1.9, 1.7),
    "construction_vehicle": (6.4, 2.8, 3.2),
    "motorcycle": (2.1, 0.8, 1.5),
    "pedestrian": (0.7, 0.7, 1.8),
    "traffic_cone": (0.4, 0.4, 1.1),
    "trailer": (12.3, 2.9, 3.9),
    "truck": (6.9, 2.5, 2.9),
}
THING_NAMES = tuple(CLASS_SIZES)


@dataclass
class BoxShape:
    cls: int
    size: np.ndarray  # [3] l, w, h
    clearance: int = 1
    record: dict = field(default_factory=dict)

    @classmethod
    def typical(cls, class_name: str, size=None) -> "BoxShape":
        s = np.asarray(size if size is not None else CLASS_SIZES[class_name], np.float64)
        return cls(CLASS_INDEX[class_name], s, 1, {"kind": "box", "size": [round(float(v), 3) for v in s]})

    @property
    def rest_z(self) -> float:
        """Box-centre height in an ego frame whose ground is at z = 0."""
        return BOX_BOTTOM_Z + float(self.size[2]) / 2

    def place(self, pose: np.ndarray) -> Placed:
        """Voxels whose centres lie inside the box at `pose` (4x4 box->ego)."""
        half = self.size / 2
        win = window_centres(corners(pose, half))
        if win is None:
            return Placed(np.zeros((0, 3), np.int64), np.zeros(0, np.uint8))
        ijk, centres = win
        inside = np.all(np.abs(to_local(pose, centres)) <= half, axis=1)
        return Placed(ijk[inside], np.full(int(inside.sum()), self.cls, np.uint8))


@dataclass
class CutShape:
    cls: int
    size: np.ndarray  # [3] l, w, h of its box
    crop: np.ndarray  # [a, b, c] uint8 labels of the object's voxels, FREE elsewhere
    origin: np.ndarray  # [3] ego-frame lower corner of crop voxel (0, 0, 0) in the source frame
    pose: np.ndarray  # 4x4 box -> source ego frame
    clearance: int = 1
    record: dict = field(default_factory=dict)

    @classmethod
    def from_frame(cls, semantics: np.ndarray, mask: np.ndarray, pose: np.ndarray, size: np.ndarray,
                   class_index: int, clearance: int, record: dict | None = None) -> "CutShape":
        """Cut the voxels `mask` [200, 200, 16] bool out of `semantics` [200, 200, 16]; `pose` is
        the object's box in that frame (4x4 box->ego)."""
        idx = np.argwhere(mask)
        lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        crop = np.where(mask[sl], semantics[sl], FREE).astype(np.uint8)
        n = int(mask.sum())
        return cls(int(class_index), np.asarray(size, np.float64), crop, RANGE_MIN + lo * VOXEL_SIZE, pose.copy(),
                   int(clearance), {**(record or {}), "kind": "cut", "voxels": n})

    @property
    def rest_z(self) -> float:
        return float(self.pose[2, 3])

    def place(self, pose: np.ndarray) -> Placed:
        """The object moved rigidly from its source pose to `pose` (4x4 box->ego)."""
        move = pose @ np.linalg.inv(self.pose)  # source ego -> target ego
        dims = np.array(self.crop.shape)
        half = dims * VOXEL_SIZE / 2
        win = window_centres(corners(move, half, self.origin + half))
        if win is None:
            return Placed(np.zeros((0, 3), np.int64), np.zeros(0, np.uint8))
        ijk, centres = win
        src = np.floor((to_local(move, centres) - self.origin) / VOXEL_SIZE).astype(np.int64)
        ok = np.all((src >= 0) & (src < dims), axis=1)
        labels = np.full(len(ijk), FREE, np.uint8)
        labels[ok] = self.crop[src[ok, 0], src[ok, 1], src[ok, 2]]
        hit = labels != FREE
        return Placed(ijk[hit], labels[hit])


Shape = BoxShape | CutShape


def box_volume_voxels(size: np.ndarray) -> float:
    """How many voxels a box of `size` [3] would fill."""
    return float(np.prod(size)) / VOXEL_SIZE**3

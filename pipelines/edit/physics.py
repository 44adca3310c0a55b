"""Physics checks for a placed object: it may not overlap anything, and it must stand on ground.

Overlap is with any voxel that is neither free nor ground (other objects, buildings, vegetation,
poles) and with the ego car itself, which is not in the occupancy but is where the sensors are.
Ground voxels may be overlapped: objects in some Occ3D labels replace the ground layer they stand
on (`clearance` 0). The check is per keyframe; paths between keyframes are not swept.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..data.occ3d import CLASS_NAMES, FREE
from ..data.synthetic.config import EGO_BOX
from .ground import IS_GROUND, Seating
from .placement import Placed, voxel_centres
from ..errors import BadInput

MIN_SUPPORT = 0.5  # share of an object's footprint columns that must have ground under them


def blockers(semantics: np.ndarray, grid: np.ndarray, placed: Placed, names: dict[int, str]) -> Counter:
    """What `placed` would overlap in one frame: {instance name, class name or 'ego car': voxels}.

    semantics [200, 200, 16] uint8 and grid [200, 200, 16] uint16 without the object itself;
    names maps grid ids to instance names.
    """
    labels = semantics[placed.index]
    bad = (labels != FREE) & ~IS_GROUND[labels]
    out: Counter = Counter()
    for iid, lab in zip(grid[placed.index][bad], labels[bad]):
        out[names.get(int(iid), CLASS_NAMES[lab]) if iid else CLASS_NAMES[lab]] += 1
    cx, cy, cz, ln, wd, ht = EGO_BOX
    rel = np.abs(voxel_centres(placed.ijk) - np.array([cx, cy, cz]))
    ego = int(np.count_nonzero(np.all(rel <= np.array([ln, wd, ht]) / 2, axis=1)))
    if ego:
        out["ego car"] += ego
    return out


def check(semantics: np.ndarray, grid: np.ndarray, placed: Placed, seating: Seating, names: dict[int, str],
          what: str, frame: int, force: bool) -> None:
    """Raise BadInput (one line naming the flag in `what`) on an overlap or a missing ground, unless force."""
    if force:
        return
    hit = blockers(semantics, grid, placed, names)
    if hit:
        listed = ", ".join(f"{k} ({v} voxels)" for k, v in hit.most_common(4))
        raise BadInput(f"{what}: collides with {listed} in frame {frame}; choose another pose or pass --force to write it anyway")
    if seating.ground_k is None or seating.support < MIN_SUPPORT:
        raise BadInput(f"{what}: off the ground in frame {frame} (ground under {seating.support:.0%} of its footprint, "
                       f"{MIN_SUPPORT:.0%} needed); choose another pose or pass --force to write it anyway")

"""Shapes for insertion: instances cut from the dataset, else class-typical boxes.

`--insert truck` (shape auto) looks for trucks in the edited scene's instance table (then, if it
has none, in the dataset's other scenes, stopping at the first scene that has some), takes the
MAX_CANDIDATES that come closest to the ego (best observed: densest labels, least cut by the grid
edge) and cuts each out of the frame where it is closest: the nearest one that fills GOOD_FILL of
its box wins, else the one that fills the largest share. When nothing of that class exists, or
nothing fills MIN_FILL of its box (sparse labels), the class-typical box is used. `--insert car_3` copies that instance's shape the same way.
"""

from __future__ import annotations

import numpy as np

from ..data.dataset import OccDataset
from ..data.occ3d import CLASS_NAMES
from ..data.scene import Instance
from .ground import clearance_of
from .placement import box_pose
from .shapes import BoxShape, CutShape, Shape, box_volume_voxels

MAX_CANDIDATES = 5
GOOD_FILL = 0.6  # the nearest candidate filling this share of its box is taken at once
MIN_FILL = 0.25  # below this share every candidate is too sparse: use the class-typical box


def _closest_frame(inst: Instance, poses: np.ndarray) -> tuple[float, int]:
    """(distance from the ego, row in inst.frames) of the frame where the instance is nearest."""
    d = [float(np.linalg.norm(np.linalg.inv(poses[t])[:2, :] @ np.r_[inst.boxes[r, :3], 1.0]))
         for r, t in enumerate(inst.frames)]
    r = int(np.argmin(d))
    return d[r], r


def cut(dataset: OccDataset, scene_name: str, inst: Instance) -> tuple[CutShape, float] | None:
    """The instance's voxels in the frame where it is closest to the ego, and how much of its box
    they fill; None when that frame has no instance grid or no voxel of it."""
    scene = dataset.scene(scene_name)
    _, r = _closest_frame(inst, scene.poses)
    t = inst.frames[r]
    frame = scene.frames[t]
    grid = frame.instance_grid()
    if grid is None:
        return None
    mask = grid == inst.id
    if not mask.any():
        return None
    sem = frame.labels()["semantics"]
    pose = np.linalg.inv(scene.poses[t]) @ box_pose(inst.boxes[r])
    size = inst.boxes[r, 3:6]
    record = {"dataset": dataset.id, "scene": scene_name, "instance": inst.name, "frame": int(t)}
    shape = CutShape.from_frame(sem, mask, pose, size, inst.cls, clearance_of(sem, mask), record)
    return shape, float(mask.sum()) / box_volume_voxels(size)


def _best(dataset: OccDataset, scene_name: str, insts: list[Instance]) -> CutShape | None:
    poses = dataset.scene(scene_name).poses
    ranked = sorted(insts, key=lambda i: _closest_frame(i, poses)[0])[:MAX_CANDIDATES]
    best, best_fill = None, MIN_FILL
    for inst in ranked:
        got = cut(dataset, scene_name, inst)
        if got is not None and got[1] >= GOOD_FILL:
            return got[0]
        if got is not None and got[1] > best_fill:
            best, best_fill = got
    return best


def class_shape(dataset: OccDataset, scene_name: str, table: dict[str, Instance], class_name: str, mode: str) -> Shape:
    """A shape for `--insert <class>`: see the module docstring; mode 'box' skips the library."""
    if mode == "box":
        return BoxShape.typical(class_name)
    order = [scene_name] + [s for s in dataset.scene_names() if s != scene_name]
    for s in order:
        tab = table if s == scene_name else dataset.scene(s).instances
        insts = [i for i in tab.values() if CLASS_NAMES[i.cls] == class_name and not i.attributes.get("inserted")]
        if insts:
            shape = _best(dataset, s, insts)
            if shape is not None:
                return shape
            break  # the nearest scene with such objects only has sparse ones: use the box
    return BoxShape.typical(class_name)


def instance_shape(dataset: OccDataset, scene_name: str, inst: Instance, mode: str) -> Shape:
    """A shape for `--insert <instance id>`: its voxels (mode auto), or a box of its size."""
    size = inst.boxes[_closest_frame(inst, dataset.scene(scene_name).poses)[1], 3:6]
    if mode != "box":
        got = cut(dataset, scene_name, inst)
        if got is not None:
            return got[0]
    return BoxShape.typical(CLASS_NAMES[inst.cls], size)

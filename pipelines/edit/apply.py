"""Applying edits to a scene held in memory: remove, move and insert instances frame by frame.

The scene's arrays ([T, 200, 200, 16]: semantics, masks, instance grids) and its instance table
are edited in place; nothing is written here. An edit may fail part-way (a collision in a later
frame): the caller then drops the whole in-memory scene, and writes the result only when every
edit succeeded, so bad input never leaves a file behind.

Frames: a removal or a move acts on the keyframes of `--frames` where the instance has voxels; an
insertion starts at `--from-frame` and lasts to the end of `--frames`, in every keyframe where
some of it is inside the grid. World poses come from each frame's ego pose (`scene.json`), times
from its timestamp, so an inserted object keeps a constant world velocity while the ego moves.

Masks: visibility changes where objects appear or vanish. An edited frame's `mask_lidar` and
`mask_camera` are ray cast from the rig before and after the edit; voxels whose visibility
changed take the new value and all others keep the source's masks (for ray-cast sources this
equals casting the edited frame; real Occ3D masks stay as they were away from the edit).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import OccDataset, Scene
from ..data.occ3d import CLASS_INDEX, CLASS_NAMES, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from ..data.scene import Instance, SceneData, SceneMeta
from . import library
from .ground import clearance_of, restore, seat
from .instances import closest, derive_table, next_name, resolve
from .physics import check
from .placement import Placed, box_of, box_pose
from .shapes import THING_NAMES, CutShape, Shape
from .spec import Edit, Insert, Move, Remove
from ..errors import BadInput
from ..geometry import planar_pose
from ..data.raycast import visibility_masks


@dataclass
class EditableScene:
    """A scene's arrays and instance table, loaded for editing."""

    meta: SceneMeta  # a deep copy, edited
    semantics: np.ndarray  # [T, 200, 200, 16] uint8
    mask_lidar: np.ndarray  # [T, 200, 200, 16] uint8
    mask_camera: np.ndarray  # [T, 200, 200, 16] uint8
    grids: np.ndarray  # [T, 200, 200, 16] uint16 instance ids, zeros where the source has none
    had_grids: bool
    list_cmd: str
    source_table: dict[str, Instance]  # the instance table before any edit (shapes are cut from it)
    original: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> semantics before editing

    @classmethod
    def load(cls, scene: Scene, list_cmd: str) -> "EditableScene":
        t = scene.num_frames
        sem = np.empty((t, *GRID_SHAPE), np.uint8)
        ml, mc = np.empty_like(sem), np.empty_like(sem)
        grids = np.zeros((t, *GRID_SHAPE), np.uint16)
        had = False
        for i, f in enumerate(scene.frames):
            lab = f.labels()
            sem[i], ml[i], mc[i] = lab["semantics"], lab["mask_lidar"], lab["mask_camera"]
            g = f.instance_grid()
            if g is not None:
                grids[i], had = g, True
        meta = copy.deepcopy(scene.meta)
        if not meta.instances and had:
            meta.instances = derive_table(sem, grids, meta.ego_to_global)
        return cls(meta, sem, ml, mc, grids, had, list_cmd, copy.deepcopy(meta.instances))

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def table(self) -> dict[str, Instance]:
        return self.meta.instances

    @property
    def poses(self) -> np.ndarray:
        return self.meta.ego_to_global

    def _names(self) -> dict[int, str]:
        return {inst.id: name for name, inst in self.table.items()}

    def _touch(self, t: int) -> None:
        if t not in self.original:
            self.original[t] = self.semantics[t].copy()

    def _where(self) -> str:
        return f"scene '{self.meta.name}'"

    def _instance(self, ref: str, flag: str) -> Instance:
        inst = resolve(self.table, ref, flag, self._where(), self.list_cmd)
        if not self.had_grids and not inst.attributes.get("inserted"):
            raise BadInput(f"{flag} '{ref}': {self._where()} has no instance grids, so its voxels are unknown; "
                           "prepare the dataset from a source with instances (synthetic, nuscenes)")
        return inst

    def _present(self, inst: Instance, frames: range) -> list[int]:
        return [t for t in frames if np.any(self.grids[t] == inst.id)]

    def _take_out(self, t: int, iid: int) -> tuple[np.ndarray, int]:
        """Remove instance `iid` from frame t, refilling its voxels; returns (its mask, voxels restored)."""
        self._touch(t)
        mask = self.grids[t] == iid
        restored = restore(self.semantics[t], mask)
        self.grids[t][mask] = 0
        return mask, restored

    def _put(self, t: int, placed: Placed, iid: int) -> None:
        self._touch(t)
        self.semantics[t][placed.index] = placed.labels
        self.grids[t][placed.index] = iid

    def _set_boxes(self, inst: Instance, boxes: dict[int, np.ndarray]) -> None:
        """Replace or add the boxes of frames `boxes` (frame -> [7]) in the instance's table entry."""
        rows = {t: inst.boxes[r] for r, t in enumerate(inst.frames)}
        rows.update(boxes)
        inst.frames = sorted(rows)
        inst.boxes = np.array([rows[t] for t in inst.frames], np.float64).reshape(-1, 7)

    def _drop_frames(self, inst: Instance, frames: set[int]) -> None:
        keep = [r for r, t in enumerate(inst.frames) if t not in frames]
        inst.frames = [inst.frames[r] for r in keep]
        inst.boxes = inst.boxes[keep].reshape(-1, 7)

    # -- edits -----------------------------------------------------------------------------------

    def apply(self, edit: Edit, frames: range, shape_mode: str, dataset: OccDataset, force: bool) -> dict:
        if isinstance(edit, Remove):
            return self.remove(edit, frames)
        if isinstance(edit, Move):
            return self.move(edit, frames, force)
        return self.insert(edit, frames, shape_mode, dataset, force)

    def remove(self, edit: Remove, frames: range) -> dict:
        """Delete the instance's voxels in `frames` and restore what was behind and under it."""
        inst = self._instance(edit.instance, "--remove")
        present = self._present(inst, frames)
        if not present:
            raise BadInput(f"--remove {edit.instance}: has no voxels in keyframes {frames.start}..{frames.stop - 1} "
                           f"(it is in frames {inst.frames[0]}..{inst.frames[-1]}); check --frames")
        removed = restored = 0
        for t in present:
            mask, n = self._take_out(t, inst.id)
            removed += int(mask.sum())
            restored += n
        self._drop_frames(inst, set(frames))
        if not inst.frames:
            del self.table[edit.instance]
        return {**edit.record(), "frames": present, "voxels_removed": removed, "voxels_restored": restored}

    def move(self, edit: Move, frames: range, force: bool) -> dict:
        """Shift the instance rigidly by (dx, dy) in the ego frame of its first edited frame and turn
        it by dyaw about its box centre, in every edited frame; each frame's voxels are cut from
        that frame, so a moving object keeps its per-frame shape."""
        flag = f"--move {edit.instance} --by {edit.dx:g},{edit.dy:g},{edit.dyaw_deg:g}"
        inst = self._instance(edit.instance, "--move")
        present = self._present(inst, frames)
        if not present:
            raise BadInput(f"--move {edit.instance}: has no voxels in keyframes {frames.start}..{frames.stop - 1}; check --frames")
        shift = self.poses[present[0]][:3, :3] @ np.array([edit.dx, edit.dy, 0.0])  # world offset
        turn = planar_pose(0.0, 0.0, math.radians(edit.dyaw_deg))[:3, :3]
        names = self._names()
        boxes, moved = {}, 0
        row_of = {t: r for r, t in enumerate(inst.frames)}
        for t in frames:
            if t not in row_of and t not in present:
                continue
            ego_inv = np.linalg.inv(self.poses[t])
            old = self._box_in_frame(inst, t, row_of)
            world = self.poses[t] @ old
            new_world = world.copy()
            new_world[:3, :3] = turn @ world[:3, :3]
            new_world[:3, 3] += shift
            size = inst.boxes[row_of[t], 3:6] if t in row_of else self._voxel_size(t, inst.id)
            if t in present:
                mask = self.grids[t] == inst.id
                shape = CutShape.from_frame(self.semantics[t], mask, old, size, inst.cls,
                                            clearance_of(self.semantics[t], mask))
                target = ego_inv @ new_world
                if t == present[0] and not (abs(target[0, 3]) < 40 and abs(target[1, 3]) < 40):
                    raise BadInput(f"{flag}: moves it to ({target[0, 3]:.1f}, {target[1, 3]:.1f}) m in frame {t}, "
                                   "outside the grid (-40..40 m); give a smaller --by")
                self._take_out(t, inst.id)
                placed, dz = self._seated(t, shape, target, names, flag, force)
                self._put(t, placed, inst.id)
                moved += len(placed)
                new_world[2, 3] += dz
            boxes[t] = box_of(new_world, size)
        self._set_boxes(inst, boxes)
        return {**edit.record(), "frames": present, "voxels_moved": moved}

    def insert(self, edit: Insert, frames: range, shape_mode: str, dataset: OccDataset, force: bool) -> dict:
        """Place a new instance at `--at` in the ego frame of its first frame, driving along its
        heading at `--speed`, in every later frame of `frames` where it is inside the grid."""
        start = frames.start if edit.from_frame is None else edit.from_frame
        flag = f"--insert {edit.what} --at {edit.x:g},{edit.y:g},{edit.yaw_deg:g}"
        if not 0 <= start < self.meta.num_frames:
            raise BadInput(f"--from-frame {start}: scene '{self.meta.name}' has keyframes 0..{self.meta.num_frames - 1}")
        if start not in frames:
            raise BadInput(f"--from-frame {start}: outside --frames {frames.start}:{frames.stop}")
        shape, cls_name = self._shape(edit.what, shape_mode, dataset)
        first = self.poses[start] @ box_pose(np.array([edit.x, edit.y, shape.rest_z, 0, 0, 0,
                                                        math.radians(edit.yaw_deg)]))
        heading = first[:3, 0] * np.array([1.0, 1.0, 0.0])
        heading /= max(np.linalg.norm(heading), 1e-12)
        # A fresh grid id, never one of the source's (even a removed one): ids stay unambiguous
        # across an edit history.
        used = [i.id for i in self.table.values()] + [i.id for i in self.source_table.values()]
        iid = int(max(used + [int(self.grids.max())])) + 1
        if iid > np.iinfo(np.uint16).max:
            raise BadInput(f"{flag}: the scene's instance grids are full (65535 ids)")
        name = next_name(self.table, cls_name)
        names = self._names()
        t0 = self.meta.timestamps[start]
        boxes, voxels = {}, 0
        for t in range(start, frames.stop):
            world = first.copy()
            world[:3, 3] += edit.speed * (self.meta.timestamps[t] - t0) / 1e6 * heading
            placed, dz = self._seated(t, shape, np.linalg.inv(self.poses[t]) @ world, names, flag, force)
            if not len(placed):
                continue  # outside the grid in this frame
            self._put(t, placed, iid)
            voxels += len(placed)
            world[2, 3] += dz
            boxes[t] = box_of(world, shape.size)
        if not boxes:
            raise BadInput(f"{flag}: no voxel of it falls inside the grid; choose a pose within -40..40 m")
        inst = Instance(name, iid, CLASS_INDEX[cls_name], [], np.zeros((0, 7)), {"inserted": True, "shape": shape.record})
        self._set_boxes(inst, boxes)
        self.table[name] = inst
        return {**edit.record(), "name": name, "grid_id": iid, "shape": shape.record, "frames": inst.frames,
                "voxels_inserted": voxels}

    # -- internals -------------------------------------------------------------------------------

    def _shape(self, what: str, mode: str, dataset: OccDataset) -> tuple[Shape, str]:
        # Shapes come from the source scene as it is on disk, so `--remove car_3 --insert car_3 --at ...`
        # (take a car out and put it elsewhere) finds car_3 although the removal ran first.
        source = self.source_table
        if what in THING_NAMES:
            return library.class_shape(dataset, self.meta.name, source, what, mode), what
        if what in source:
            inst = source[what]
            return library.instance_shape(dataset, self.meta.name, inst, mode), CLASS_NAMES[inst.cls]
        close = closest(what, list(THING_NAMES) + list(source))
        hint = f"closest: {', '.join(close)}" if close else f"classes: {', '.join(THING_NAMES)}"
        raise BadInput(f"--insert '{what}': not an object class or an instance of {self._where()} ({hint}); "
                       f"list the instances with `{self.list_cmd}`")

    def _box_in_frame(self, inst: Instance, t: int, row_of: dict[int, int]) -> np.ndarray:
        """4x4 box->ego pose of the instance in frame t (its table box, else around its voxels)."""
        if t in row_of:
            return np.linalg.inv(self.poses[t]) @ box_pose(inst.boxes[row_of[t]])
        idx = np.argwhere(self.grids[t] == inst.id)
        pose = np.eye(4)
        pose[:3, 3] = RANGE_MIN + (idx.min(axis=0) + idx.max(axis=0) + 1) / 2 * VOXEL_SIZE
        return pose

    def _voxel_size(self, t: int, iid: int) -> np.ndarray:
        idx = np.argwhere(self.grids[t] == iid)
        return (idx.max(axis=0) - idx.min(axis=0) + 1) * VOXEL_SIZE

    def _seated(self, t: int, shape: Shape, pose: np.ndarray, names: dict[int, str], flag: str,
                force: bool) -> tuple[Placed, float]:
        """The shape's voxels at `pose` in frame t, stood on the ground and checked; (voxels, z shift m)."""
        placed = shape.place(pose)
        if not len(placed):
            return placed, 0.0
        seating = seat(self.semantics[t], placed, shape.clearance)
        placed = placed.shifted(seating.dk)
        check(self.semantics[t], self.grids[t], placed, seating, names, flag, t, force)
        return placed, seating.dk * VOXEL_SIZE

    # -- result ----------------------------------------------------------------------------------

    def result(self, extra: dict) -> SceneData:
        """The edited scene with masks updated where visibility changed (see the module docstring)."""
        rig = self.meta.rig
        for t, before in self.original.items():
            if np.array_equal(before, self.semantics[t]):
                continue
            lb, cb = visibility_masks(before, rig)
            la, ca = visibility_masks(self.semantics[t], rig)
            self.mask_lidar[t] = np.where(lb != la, la, self.mask_lidar[t])
            self.mask_camera[t] = np.where(cb != ca, ca, self.mask_camera[t])
        self.meta.extra = {**self.meta.extra, **extra}
        grids = self.grids if self.had_grids or self.grids.any() else None
        data = SceneData(self.meta, self.semantics, self.mask_lidar, self.mask_camera, grids)
        data.validate(f"edited scene '{self.meta.name}'")
        return data

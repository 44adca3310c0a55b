"""How instances are named and found: the scene's instance table, ids in the grids, look-ups.

An instance is named `<class>_<n>` (n counts from 1 per class in order of first appearance), its
`id` is its value in the per-frame instance grids (uint16, 0 = none). The synthetic and nuScenes
sources both write such a table into `scene.json`. A scene that has instance grids but no table
(an `occ-folder` export with 'instances' arrays) gets one derived from the grids here: each grid
id becomes `<majority class>_<n>` in id order, with axis-aligned boxes around its voxels.
"""

from __future__ import annotations

import difflib
import re

import numpy as np

from ..data.occ3d import CLASS_NAMES, FREE, NUM_CLASSES, VOXEL_SIZE
from ..data.scene import Instance
from .placement import voxel_centres
from ..errors import BadInput


def derive_table(semantics: np.ndarray, grids: np.ndarray, poses: np.ndarray) -> dict[str, Instance]:
    """Instance table from grids alone: semantics and grids [T, 200, 200, 16], poses [T, 4, 4]."""
    found: dict[int, dict] = {}
    for t in range(len(grids)):
        g = grids[t]
        for iid in np.unique(g[g > 0]):
            mask = g == iid
            rec = found.setdefault(int(iid), {"frames": [], "boxes": [], "labels": np.zeros(NUM_CLASSES, np.int64)})
            rec["labels"] += np.bincount(semantics[t][mask], minlength=NUM_CLASSES)
            c = voxel_centres(np.argwhere(mask))
            lo, hi = c.min(axis=0) - VOXEL_SIZE / 2, c.max(axis=0) + VOXEL_SIZE / 2
            centre = poses[t][:3, :3] @ ((lo + hi) / 2) + poses[t][:3, 3]
            yaw = float(np.arctan2(poses[t][1, 0], poses[t][0, 0]))  # axis-aligned in the ego frame
            rec["frames"].append(t)
            rec["boxes"].append([*centre, *(hi - lo), yaw])
    table: dict[str, Instance] = {}
    counters: dict[int, int] = {}
    for iid in sorted(found):
        rec = found[iid]
        labels = rec["labels"].copy()
        labels[FREE] = 0
        cls = int(np.argmax(labels))
        counters[cls] = counters.get(cls, 0) + 1
        name = f"{CLASS_NAMES[cls]}_{counters[cls]}"
        table[name] = Instance(name, iid, cls, rec["frames"], np.asarray(rec["boxes"], np.float64),
                               {"derived_from_grids": True})
    return table


def resolve(table: dict[str, Instance], ref: str, flag: str, where: str, list_cmd: str) -> Instance:
    """The instance named `ref`, or BadInput naming the flag and the closest names (difflib)."""
    if ref in table:
        return table[ref]
    if not table:
        raise BadInput(f"{flag} '{ref}': {where} has no instances (its dataset has no instance table or grids)")
    close = closest(ref, list(table))
    hint = f"closest: {', '.join(close)}" if close else f"it has {', '.join(list(table)[:8])}{' …' if len(table) > 8 else ''}"
    raise BadInput(f"{flag} '{ref}': no such instance in {where} ({hint}); list them with `{list_cmd}`")


def closest(ref: str, names: list[str], n: int = 5) -> list[str]:
    """Up to n names most similar to `ref` (difflib ratio >= 0.5), ties in natural order (car_2
    before car_10)."""
    def natural(name: str) -> list:
        return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]

    scored = [(difflib.SequenceMatcher(None, ref, name).ratio(), name) for name in names]
    return [name for r, name in sorted(scored, key=lambda s: (-s[0], natural(s[1]))) if r >= 0.5][:n]


def next_name(table: dict[str, Instance], class_name: str) -> str:
    """`<class>_<n>` with n one above the largest n of that class (never reuses a name)."""
    pat = re.compile(rf"{re.escape(class_name)}_(\d+)")
    ns = [int(m.group(1)) for n in table if (m := pat.fullmatch(n))]
    return f"{class_name}_{max(ns, default=0) + 1}"


def frame_ranges(frames: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8'."""
    out, start = [], None
    for a, b in zip(frames, frames[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = None
    return ",".join(out)


def rows(table: dict[str, Instance], poses: np.ndarray) -> list[dict]:
    """One row per instance for `gdrive edit --list`: name, grid id, class, frames, size (l, w, h m),
    where it first appears (frame and x, y in that frame's ego frame) and whether it moves."""
    out = []
    for name, inst in table.items():
        first = inst.frames[0]
        b = inst.boxes[0]
        local = np.linalg.inv(poses[first]) @ np.array([b[0], b[1], b[2], 1.0])
        travel = float(np.linalg.norm(inst.boxes[:, :2] - inst.boxes[0, :2], axis=1).max())
        out.append({
            "id": name, "grid_id": int(inst.id), "class": inst.class_name, "frames": [int(f) for f in inst.frames],
            "size_m": [round(float(v), 2) for v in b[3:6]], "first_frame": int(first),
            "first_xy_m": [round(float(local[0]), 2), round(float(local[1]), 2)], "moving": travel > 0.5,
        })
    return out


def format_rows(items: list[dict]) -> list[str]:
    """Aligned text lines (header first) for the terminal."""
    head = ["id", "class", "frames", "size l×w×h (m)", "first seen (frame: x, y m)", "moving"]
    body = [[r["id"], r["class"], f"{frame_ranges(r['frames'])} ({len(r['frames'])})",
             "×".join(f"{v:.1f}" for v in r["size_m"]),
             f"{r['first_frame']}: {r['first_xy_m'][0]:.1f}, {r['first_xy_m'][1]:.1f}", "yes" if r["moving"] else "no"]
            for r in items]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *body]]

"""Ego safety in an occupancy grid: does the ego's box overlap obstacle voxels, and does it stand on
the driveable surface.

The ego box is gdrive's ego (4.6 × 1.9 × 1.6 m, the pose's origin on the rear axle, 1.35 m behind
the box centre, 0.1 m above the ground layer). A voxel is inside the box when its centre is; the
box covers the layers with centres 0.4–1.6 m, above the ground layer (centre 0.0 m). Obstacles are
the classes a car cannot drive through: vehicles, pedestrians, cyclists, barriers, cones,
buildings (manmade) and vegetation (`others` and the ground classes are not). The ground under
the ego is, per footprint column, the highest non-free label of the layers at or below the ground
layer; a column with none is unknown.

Shapes: labels [200, 200, 16] uint8 (x, y, z), instances the same (uint16, 0 = none), a pose
[4, 4] of the ego in the grid's ego frame.
"""

from __future__ import annotations

import numpy as np

from ..data.occ3d import CLASS_INDEX, CLASS_NAMES, FREE, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from ..data.synthetic.config import BOX_BOTTOM_Z, EGO_HEIGHT, EGO_LENGTH, EGO_REAR_AXLE_TO_CENTRE, EGO_WIDTH

OBSTACLES = ("barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle", "pedestrian",
             "traffic_cone", "trailer", "truck", "manmade", "vegetation")
OBSTACLE_IDS = np.array([CLASS_INDEX[c] for c in OBSTACLES])
DRIVEABLE = CLASS_INDEX["driveable_surface"]
_CENTRES_Z = RANGE_MIN[2] + (np.arange(GRID_SHAPE[2]) + 0.5) * VOXEL_SIZE
BOX_LAYERS = np.flatnonzero((_CENTRES_Z >= BOX_BOTTOM_Z) & (_CENTRES_Z <= BOX_BOTTOM_Z + EGO_HEIGHT))
GROUND_LAYERS = np.flatnonzero(_CENTRES_Z <= 0.0 + 1e-6)
ON_ROAD_SHARE = 0.5  # the ego is on the driveable surface when at least this share of its known ground is


def footprint_columns(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Grid columns (ix, iy) whose centres lie inside the ego's footprint at `pose`, and how many
    footprint columns there are in all (those outside the grid included)."""
    half = np.array([EGO_LENGTH / 2, EGO_WIDTH / 2])
    centre_local = np.array([EGO_REAR_AXLE_TO_CENTRE, 0.0])
    rot, t = pose[:2, :2], pose[:2, 3]
    corners = np.array([[sx, sy] for sx in (-1, 1) for sy in (-1, 1)]) * half + centre_local
    world = corners @ rot.T + t
    lo = np.floor((world.min(0) - RANGE_MIN[:2]) / VOXEL_SIZE).astype(int) - 1
    hi = np.ceil((world.max(0) - RANGE_MIN[:2]) / VOXEL_SIZE).astype(int) + 1
    ix, iy = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    ix, iy = ix.ravel(), iy.ravel()
    centres = RANGE_MIN[:2] + (np.stack([ix, iy], -1) + 0.5) * VOXEL_SIZE
    local = (centres - t) @ rot - centre_local  # rot.T applied to (c - t), row vectors
    inside = np.all(np.abs(local) <= half, axis=1)
    ix, iy = ix[inside], iy[inside]
    total = len(ix)
    keep = (ix >= 0) & (ix < GRID_SHAPE[0]) & (iy >= 0) & (iy < GRID_SHAPE[1])
    return ix[keep], iy[keep], total


def ego_safety(labels: np.ndarray, pose: np.ndarray, instances: np.ndarray | None = None,
               names: dict[int, str] | None = None) -> dict:
    """The ego at `pose` in `labels`: {collision, obstacle_voxels, classes {name: voxels},
    instances [names] (where an instance grid is given), driveable_share (None: no known ground),
    on_driveable, footprint_in_grid (share of the footprint inside the grid)}."""
    ix, iy, total = footprint_columns(np.asarray(pose, dtype=np.float64))
    box = labels[ix[:, None], iy[:, None], BOX_LAYERS[None, :]]
    hit = np.isin(box, OBSTACLE_IDS)
    classes = {CLASS_NAMES[c]: int(n) for c, n in zip(*np.unique(box[hit], return_counts=True))}
    out = {"collision": bool(hit.any()), "obstacle_voxels": int(hit.sum()), "classes": classes}
    if instances is not None:
        ids = np.unique(instances[ix[:, None], iy[:, None], BOX_LAYERS[None, :]][hit])
        out["instances"] = sorted((names or {}).get(int(i), f"instance {int(i)}") for i in ids if i)
    ground = labels[ix[:, None], iy[:, None], GROUND_LAYERS[None, :]]  # [n, g], bottom first
    known = ground != FREE
    top = np.where(known.any(1), np.take_along_axis(
        ground, (known.shape[1] - 1 - np.argmax(known[:, ::-1], 1))[:, None], 1)[:, 0], FREE)
    seen = top != FREE
    share = float(np.mean(top[seen] == DRIVEABLE)) if seen.any() else None
    out.update({"driveable_share": share, "on_driveable": None if share is None else share >= ON_ROAD_SHARE,
                "footprint_in_grid": len(ix) / max(total, 1)})
    return out


def _spans(frames: list[int]) -> str:
    """[3, 4, 5, 8] -> '3–5, 8'."""
    parts, i = [], 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and frames[j + 1] == frames[j] + 1:
            j += 1
        parts.append(str(frames[i]) if i == j else f"{frames[i]}–{frames[j]}")
        i = j + 1
    return ", ".join(parts)


def summarise_safety(per_frame: list[dict]) -> dict:
    """Per-frame reports ({'observed': ego_safety, 'predicted': ego_safety}, frames numbered from 1)
    -> {collision_frames, off_road_frames (per world), instances hit in the observation, ok}."""
    out: dict = {}
    for world in ("observed", "predicted"):
        rows = [(i + 1, f[world]) for i, f in enumerate(per_frame) if world in f]
        if not rows:
            continue
        out[world] = {
            "collision_frames": [i for i, r in rows if r["collision"]],
            "off_road_frames": [i for i, r in rows if r["on_driveable"] is False],
            "instances": sorted({n for _, r in rows for n in r.get("instances", [])}),
            "classes": sorted({c for _, r in rows for c in r["classes"]}),
        }
    out["ok"] = not any(w["collision_frames"] or w["off_road_frames"] for w in out.values() if isinstance(w, dict))
    return out


def _when(frames: list[int], dt: float) -> str:
    """'frame 5 (t = 2.5 s)' / 'frames 3–5, 8 (t = 1.5–4 s)'."""
    t = f"{frames[0] * dt:g} s" if len(frames) == 1 else f"{frames[0] * dt:g}–{frames[-1] * dt:g} s"
    return f"frame{'s' if len(frames) > 1 else ''} {_spans(frames)} (t = {t})"


def safety_line(summary: dict, dt: float) -> str:
    """One line for the console: what the ego hits or leaves, in which world, and when."""
    if summary.get("ok", True):
        return "safety: no overlap with obstacles and on the driveable surface in every frame (observation and forecast)"
    parts = []
    for world, label in (("observed", "the observation"), ("predicted", "the forecast")):
        w = summary.get(world)
        if not w:
            continue
        if w["collision_frames"]:
            what = ", ".join(w["instances"]) if w["instances"] else ", ".join(w["classes"])
            parts.append(f"in {label} the ego box overlaps {what} at {_when(w['collision_frames'], dt)}")
        if w["off_road_frames"]:
            parts.append(f"in {label} it is off the driveable surface at {_when(w['off_road_frames'], dt)}")
    return "safety: " + "; ".join(parts) + "; per-frame details in frames.json"

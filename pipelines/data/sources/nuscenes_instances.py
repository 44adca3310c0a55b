"""Instance grids of the `nuscenes` source: each annotated box's instance id given to the object
voxels of the Occ3D labels inside it (the rule is in `nuscenes`'s docstring)."""

from __future__ import annotations

import numpy as np

from ..occ3d import GRID_SHAPE, RANGE_MIN, THING_CLASSES, VOXEL_SIZE, axis_centres

# Every voxel whose centre is within this many metres outside a box (on each axis of the box)
# still belongs to it: Occ3D voxelisation and annotation jitter put object voxels on box faces.
BOX_MARGIN = 0.2
_MAX_OBJECT_CLASS = max(THING_CLASSES)


# --------------------------------------------------------------------------------------------
# Instance grids
# --------------------------------------------------------------------------------------------


def assign_instances(
    semantics: np.ndarray,
    centres: np.ndarray,
    rotations: np.ndarray,
    sizes: np.ndarray,
    ids: np.ndarray,
    margin: float = BOX_MARGIN,
) -> np.ndarray:
    """One frame's instance grid from boxes in that frame's ego frame.

    semantics: [200, 200, 16] Occ3D labels; centres [B, 3]; rotations [B, 3, 3] box->ego;
    sizes [B, 3] (length, width, height) in metres; ids [B] instance ids (>= 1).
    A voxel gets id b when its label is an object class (0..10) and its centre lies inside box b
    grown by `margin` on each side; among several such boxes the one with the nearest centre wins
    (ties: the box listed first). Returns [200, 200, 16] uint16, 0 = none.
    Works box by box on the block of voxels under the box's axis-aligned bounds (no per-voxel
    Python loop).
    """
    out = np.zeros(GRID_SHAPE, np.uint16)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 3)
    if len(centres) == 0:
        return out
    rotations = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    half = np.asarray(sizes, dtype=np.float64).reshape(-1, 3) / 2.0 + margin
    ids = np.asarray(ids).reshape(-1)
    is_object = np.asarray(semantics) <= _MAX_OBJECT_CLASS
    best = np.full(GRID_SHAPE, np.inf)
    axes = [axis_centres(d) for d in range(3)]
    n = np.array(GRID_SHAPE)
    # Axis-aligned half extents of each rotated grown box.
    extents = np.einsum("bij,bj->bi", np.abs(rotations), half)
    lo_idx = np.ceil((centres - extents - RANGE_MIN) / VOXEL_SIZE - 0.5 - 1e-9).astype(np.int64)
    hi_idx = np.floor((centres + extents - RANGE_MIN) / VOXEL_SIZE - 0.5 + 1e-9).astype(np.int64)
    lo_idx = np.maximum(lo_idx, 0)
    hi_idx = np.minimum(hi_idx, n - 1)
    for b in range(len(centres)):
        lo, hi = lo_idx[b], hi_idx[b]
        if np.any(hi < lo):
            continue  # the box lies outside the grid
        sl = tuple(slice(int(lo[d]), int(hi[d]) + 1) for d in range(3))
        obj = is_object[sl]
        if not obj.any():
            continue
        dx = (axes[0][sl[0]] - centres[b, 0])[:, None, None]
        dy = (axes[1][sl[1]] - centres[b, 1])[None, :, None]
        dz = (axes[2][sl[2]] - centres[b, 2])[None, None, :]
        r = rotations[b]
        inside = obj
        for j in range(3):  # box-frame coordinate j = (R^T d)_j
            local = r[0, j] * dx + r[1, j] * dy + r[2, j] * dz
            inside = inside & (np.abs(local) <= half[b, j])
        dist = dx * dx + dy * dy + dz * dz
        block_best = best[sl]
        take = inside & (dist < block_best)
        if take.any():
            block_best[take] = np.broadcast_to(dist, take.shape)[take]
            out[sl][take] = ids[b]
    return out

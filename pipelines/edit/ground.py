"""The ground under objects: restoring it where one is removed, and standing placed objects on it.

Restoration (after a removal or the old place of a move): each layer of the emptied voxels takes
what the neighbouring columns hold at that height. Layers where the surrounding columns are mostly
ground (road, sidewalk, terrain, other flat) take, per voxel, the label that most of the four axis
directions meet first, so lane edges and kerbs continue straight under the object; layers above
take the most common label around the object (typically free), so a wall or a parked car beside it
is not stretched into the gap. Other objects' voxels (classes 0..10) are never copied.

Seating: a placed object is shifted by whole layers so that its lowest voxel sits `clearance`
layers above the ground's top layer around it (median over the footprint and a 2-column ring);
`support` is the share of its footprint columns that have ground at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..data.occ3d import FREE, NUM_CLASSES, THING_CLASSES
from .placement import Placed

GROUND_CLASSES = (11, 12, 13, 14)  # driveable_surface, other_flat, sidewalk, terrain
IS_GROUND = np.isin(np.arange(NUM_CLASSES), GROUND_CLASSES)
IS_THING = np.isin(np.arange(NUM_CLASSES), THING_CLASSES)
RING = 3  # columns around a hole whose labels decide how each of its layers is filled
MARGIN = 8  # columns around a hole searched for the nearest ground column
SEAT_RING = 2  # columns around a placed object whose ground decides its height


def _window(mask2d: np.ndarray, margin: int) -> tuple[slice, slice]:
    ii, jj = np.nonzero(mask2d)
    nx, ny = mask2d.shape
    return (slice(max(ii.min() - margin, 0), min(ii.max() + margin + 1, nx)),
            slice(max(jj.min() - margin, 0), min(jj.max() + margin + 1, ny)))


def restore(semantics: np.ndarray, hole: np.ndarray) -> int:
    """Refill the voxels `hole` [200, 200, 16] bool of `semantics` [200, 200, 16] uint8 in place
    from the neighbouring columns; returns how many of them became non-free (restored ground)."""
    if not hole.any():
        return 0
    win = _window(hole.any(axis=2), MARGIN)
    sub, hsub = semantics[win], hole[win]  # views: writes go to `semantics`
    filled = 0
    for k in np.nonzero(hsub.any(axis=(0, 1)))[0]:
        level, hk = sub[:, :, k], hsub[:, :, k]
        source = ~hk & ~IS_THING[level]
        ring = ndimage.binary_dilation(hk, iterations=RING) & source
        if not ring.any():
            level[hk] = FREE
            continue
        counts = np.bincount(level[ring], minlength=NUM_CLASSES)
        majority = int(np.argmax(counts))
        if IS_GROUND[majority]:
            level[hk] = _axis_vote(level, source, hk)
        else:
            level[hk] = majority
        filled += int(np.count_nonzero(level[hk] != FREE))
    return filled


def _axis_vote(level: np.ndarray, source: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Labels for the `hole` cells of one layer [a, b]: the label most of the four axis directions
    (-x, +x, -y, +y) meet first among `source` cells; a tie goes to the nearest of the tied ones.

    A vote rather than the single nearest cell: near a straight kerb crossing the hole, the nearest
    cell is often across the kerb, while three of the four directions stay on the right side of it,
    so the kerb continues straight through the hole.
    """
    a, b = level.shape
    ii, jj = np.nonzero(hole)
    big = np.iinfo(np.int64).max // 4
    cand_lab, cand_dist = [], []
    for axis, n in ((0, a), (1, b)):
        pos = np.arange(n)[:, None] if axis == 0 else np.arange(n)[None, :]
        prev = np.maximum.accumulate(np.where(source, pos, -1), axis=axis)
        nxt = np.flip(np.minimum.accumulate(np.flip(np.where(source, pos, big), axis=axis), axis=axis), axis=axis)
        here = ii if axis == 0 else jj
        for found in (prev[ii, jj], nxt[ii, jj]):
            ok = (found >= 0) & (found < n)
            f = np.clip(found, 0, n - 1)
            lab = level[f, jj] if axis == 0 else level[ii, f]
            cand_lab.append(np.where(ok, lab, -1))
            cand_dist.append(np.where(ok, np.abs(found - here), big))
    labs, dists = np.stack(cand_lab, 1), np.stack(cand_dist, 1)  # [n, 4]
    votes = (labs[:, :, None] == labs[:, None, :]).sum(axis=2) * (labs >= 0)  # how many directions agree
    # Most votes first, then the nearest: one sortable score per direction.
    score = votes.astype(np.int64) * (4 * max(a, b) + 1) - np.minimum(dists, 4 * max(a, b))
    best = labs[np.arange(len(ii)), np.argmax(score, axis=1)]
    if np.any(best < 0):  # no source in any axis direction: the nearest source anywhere
        _, (ni, nj) = ndimage.distance_transform_edt(~source, return_indices=True)
        miss = best < 0
        best[miss] = level[ni[ii[miss], jj[miss]], nj[ii[miss], jj[miss]]]
    return best.astype(np.uint8)


def top_ground(columns: np.ndarray) -> np.ndarray:
    """[a, b, 16] labels -> [a, b] index of the highest ground-class layer per column (-1: none)."""
    g = IS_GROUND[columns]
    nz = columns.shape[2]
    top = nz - 1 - np.argmax(g[:, :, ::-1], axis=2)
    return np.where(g.any(axis=2), top, -1)


def ground_around(semantics: np.ndarray, footprint: np.ndarray) -> tuple[int | None, float]:
    """Ground height around a footprint [200, 200] bool: (median top ground layer over the
    footprint and a ring of SEAT_RING columns, or None without ground; share of footprint columns
    with ground)."""
    win = _window(footprint, SEAT_RING)
    fp = footprint[win]
    top = top_ground(semantics[win])
    near = ndimage.binary_dilation(fp, iterations=SEAT_RING)
    support = float(np.mean(top[fp] >= 0))
    vals = top[near & (top >= 0)]
    if vals.size == 0:
        return None, support
    return int(np.percentile(vals, 50, method="lower")), support


def footprint_of(ijk: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[n, 3] voxel indices -> [X, Y] bool: the columns they occupy."""
    fp = np.zeros(shape, bool)
    fp[ijk[:, 0], ijk[:, 1]] = True
    return fp


def clearance_of(semantics: np.ndarray, mask: np.ndarray) -> int:
    """Layers between the ground's top and the lowest voxel of the object `mask` (clamped to 0..1:
    objects stand on the ground; a higher lowest voxel means its lower part was not observed)."""
    idx = np.argwhere(mask)
    g, _ = ground_around(semantics, footprint_of(idx, semantics.shape[:2]))
    if g is None:
        return 1
    return int(np.clip(idx[:, 2].min() - g, 0, 1))


@dataclass
class Seating:
    dk: int  # layers to shift the placed voxels by
    support: float  # share of the footprint columns that have ground
    ground_k: int | None  # the ground's top layer around the object (None: no ground)


def seat(semantics: np.ndarray, placed: Placed, clearance: int) -> Seating:
    """How far to shift `placed` so it stands on the ground of `semantics` (without the object)."""
    g, support = ground_around(semantics, footprint_of(placed.ijk, semantics.shape[:2]))
    if g is None:
        return Seating(0, support, None)
    return Seating(int(g + clearance - placed.ijk[:, 2].min()), support, g)

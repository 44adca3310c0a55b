"""World -> Occ3D grids in the ego frame of each keyframe.

The static world (ground, roads, sidewalks, buildings, vegetation, poles) is rasterised once
into a map-frame column grid [NX, NY, 16] at 0.4 m whose layers coincide with the ego grid's
(the ego is planar at z = 0), then resampled per frame by a nearest-neighbour gather along the
rotated ego grid. Object instances are rasterised directly in the ego frame: a voxel belongs to
a box exactly when its centre lies inside the box, so the instance grids can be recomputed from
the boxes and poses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from scipy import ndimage

from ..occ3d import FREE, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE, axis_centres
from .roads import RoadNetwork
from .world import World

C_DRIVE, C_OTHER_FLAT, C_SIDEWALK, C_TERRAIN, C_MANMADE, C_VEG = 11, 12, 13, 14, 15, 16
GROUND_K = 2  # the ground layer: voxel centre z = 0.0
NZ = GRID_SHAPE[2]
_Z = RANGE_MIN[2] + (np.arange(NZ) + 0.5) * VOXEL_SIZE  # layer centre heights


@dataclass
class Raster:
    x0: float  # map-frame x of the grid's lower edge
    y0: float
    grid: np.ndarray  # [NX, NY, 16] uint8 labels

    def span(self, a: float, b: float, axis: int) -> slice:
        """Cells of `axis` whose centres lie in [a, b]."""
        origin = self.x0 if axis == 0 else self.y0
        lo = int(math.ceil((a - origin) / VOXEL_SIZE - 0.5))
        hi = int(math.floor((b - origin) / VOXEL_SIZE - 0.5))
        n = self.grid.shape[axis]
        return slice(max(lo, 0), max(min(hi + 1, n), 0))

    def fill(self, x0, x1, y0, y1, k0, k1, label, only_free=False) -> None:
        sx, sy = self.span(min(x0, x1), max(x0, x1), 0), self.span(min(y0, y1), max(y0, y1), 1)
        view = self.grid[sx, sy, k0 : k1 + 1]
        if only_free:
            view[view == FREE] = label
        else:
            view[...] = label

    def cell_centres(self, sx: slice, sy: slice) -> tuple[np.ndarray, np.ndarray]:
        xs = self.x0 + (np.arange(sx.start, sx.stop) + 0.5) * VOXEL_SIZE
        ys = self.y0 + (np.arange(sy.start, sy.stop) + 0.5) * VOXEL_SIZE
        return xs, ys


def _paint_roads(r: Raster, net: RoadNetwork) -> None:
    """Sidewalks, then carriageways over them (crosswalks and intersections), then medians."""
    nx, ny = net.shape
    xs, ys, vr, hr = net.xs, net.ys, net.vroads, net.hroads
    segs_v = [(i, j) for i in range(nx) for j in range(ny - 1) if net.vseg[i, j]]
    segs_h = [(i, j) for j in range(ny) for i in range(nx - 1) if net.hseg[j, i]]
    for label in (C_SIDEWALK, C_DRIVE):
        for i, j in segs_v:
            w = vr[i].half_width + (vr[i].sidewalk if label == C_SIDEWALK else 0.0)
            r.fill(xs[i] - w, xs[i] + w, ys[j], ys[j + 1], GROUND_K, GROUND_K, label)
        for i, j in segs_h:
            w = hr[j].half_width + (hr[j].sidewalk if label == C_SIDEWALK else 0.0)
            r.fill(xs[i], xs[i + 1], ys[j] - w, ys[j] + w, GROUND_K, GROUND_K, label)
    for i, j in segs_v:
        m = vr[i].median
        if m > 0:
            a = ys[j] + net.stop_dist(i, j, 1)
            b = ys[j + 1] - net.stop_dist(i, j + 1, 1)
            r.fill(xs[i] - m / 2, xs[i] + m / 2, a, b, GROUND_K, GROUND_K, C_OTHER_FLAT)
    for i, j in segs_h:
        m = hr[j].median
        if m > 0:
            a = xs[i] + net.stop_dist(i, j, 0)
            b = xs[i + 1] - net.stop_dist(i + 1, j, 0)
            r.fill(a, b, ys[j] - m / 2, ys[j] + m / 2, GROUND_K, GROUND_K, C_OTHER_FLAT)


def _paint_prims(r: Raster, prims: list[tuple]) -> None:
    for p in prims:
        kind = p[0]
        if kind == "rect":
            r.fill(*p[1:])
        elif kind == "disk":
            _, cx, cy, rx, ry, k0, k1, label = p
            sx, sy = r.span(cx - rx, cx + rx, 0), r.span(cy - ry, cy + ry, 1)
            if sx.stop <= sx.start or sy.stop <= sy.start:
                continue
            gx, gy = r.cell_centres(sx, sy)
            inside = ((gx[:, None] - cx) / rx) ** 2 + ((gy[None, :] - cy) / ry) ** 2 <= 1.0
            view = r.grid[sx, sy, k0 : k1 + 1]
            view[inside] = label
        elif kind == "tree":
            _, x, y, trunk_top, zc, rad = p
            sx, sy = r.span(x - rad, x + rad, 0), r.span(y - rad, y + rad, 1)
            if sx.stop <= sx.start or sy.stop <= sy.start:
                continue
            gx, gy = r.cell_centres(sx, sy)
            d2 = (gx[:, None, None] - x) ** 2 + (gy[None, :, None] - y) ** 2 + (_Z[None, None, :] - zc) ** 2
            view = r.grid[sx, sy, :]
            view[(d2 <= rad * rad) & (view == FREE)] = C_VEG
            tx, ty = r.span(x - 0.2, x + 0.2, 0), r.span(y - 0.2, y + 0.2, 1)
            trunk = r.grid[tx, ty, GROUND_K + 1 : trunk_top + 1]
            trunk[trunk == FREE] = C_VEG
        elif kind == "pole":
            _, x, y, top, dx, dy, arm = p
            r.fill(x - 0.2, x + 0.2, y - 0.2, y + 0.2, GROUND_K + 1, top, C_MANMADE, True)
            if arm > 0:
                for t in np.arange(0.4, arm, 0.3):
                    px, py = x + dx * t, y + dy * t
                    r.fill(px - 0.2, px + 0.2, py - 0.2, py + 0.2, top, top, C_MANMADE, True)


def static_raster(net: RoadNetwork, world: World, lo: np.ndarray, hi: np.ndarray) -> Raster:
    """Rasterise the static world over the map-frame box [lo, hi] ([2] each)."""
    x0, y0 = float(np.floor(lo[0])), float(np.floor(lo[1]))
    nx = int(np.ceil((hi[0] - x0) / VOXEL_SIZE)) + 1
    ny = int(np.ceil((hi[1] - y0) / VOXEL_SIZE)) + 1
    grid = np.full((nx, ny, NZ), FREE, np.uint8)
    grid[:, :, GROUND_K] = C_TERRAIN
    r = Raster(x0, y0, grid)
    # Blocks first (their ground labels), then roads over the block edges, then the 3D objects
    # of blocks and streets so that e.g. a canopy may hang over a sidewalk.
    flat = [p for p in world.prims if p[0] in ("rect", "disk") and p[5] == GROUND_K and p[6] == GROUND_K]
    rest = [p for p in world.prims if not (p[0] in ("rect", "disk") and p[5] == GROUND_K and p[6] == GROUND_K)]
    _paint_prims(r, flat)
    _paint_roads(r, net)
    _paint_prims(r, rest)
    _hollow_buildings(r)
    return r


def _hollow_buildings(r: Raster) -> None:
    """Keep only a 0.8 m shell of buildings taller than the grid.

    Occ3D labels what sensors saw: facades, not the inside of buildings. The floor (the ground
    layer) stays, so the ground is continuous, and the shell is two cells thick so that the
    nearest-neighbour resampling on a rotated ego grid never opens a gap in it.
    """
    g = r.grid
    tall = (g[:, :, GROUND_K + 1] == C_MANMADE) & (g[:, :, NZ - 1] == C_MANMADE)
    inside = ndimage.binary_erosion(tall, structure=np.ones((3, 3), bool), iterations=2, border_value=1)
    g[inside, GROUND_K + 1 :] = FREE


def gather_frame(r: Raster, ex: float, ey: float, eyaw: float) -> np.ndarray:
    """Static labels on the ego grid of a map-frame ego pose, [200, 200, 16] uint8."""
    u = axis_centres(0)
    v = axis_centres(1)
    c, s = math.cos(eyaw), math.sin(eyaw)
    mx = ex + c * u[:, None] - s * v[None, :]
    my = ey + s * u[:, None] + c * v[None, :]
    ia = np.clip(np.floor((mx - r.x0) / VOXEL_SIZE).astype(np.int64), 0, r.grid.shape[0] - 1)
    ib = np.clip(np.floor((my - r.y0) / VOXEL_SIZE).astype(np.int64), 0, r.grid.shape[1] - 1)
    return r.grid[ia, ib]


@numba.njit(cache=True, nogil=True)
def paint_boxes(sem, inst, boxes, cls, ids, counts, write):  # pragma: no cover - jit
    """Voxels whose centres lie inside ego-frame boxes [B, 7] (cx, cy, cz, l, w, h, yaw).

    counts[b] += number of such voxels; with `write`, also sem = cls[b] and inst = ids[b] there.
    """
    nx, ny, nz = sem.shape
    for b in range(boxes.shape[0]):
        cx, cy, cz, hl, hw, hh, yaw = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3] / 2, boxes[b, 4] / 2, boxes[b, 5] / 2, boxes[b, 6]
        c, s = math.cos(yaw), math.sin(yaw)
        ex = abs(c) * hl + abs(s) * hw
        ey = abs(s) * hl + abs(c) * hw
        i0 = max(0, int(math.ceil((cx - ex + 40.0) / 0.4 - 0.5)) - 1)
        i1 = min(nx - 1, int(math.floor((cx + ex + 40.0) / 0.4 - 0.5)) + 1)
        j0 = max(0, int(math.ceil((cy - ey + 40.0) / 0.4 - 0.5)) - 1)
        j1 = min(ny - 1, int(math.floor((cy + ey + 40.0) / 0.4 - 0.5)) + 1)
        k0 = max(0, int(math.ceil((cz - hh + 1.0) / 0.4 - 0.5)) - 1)
        k1 = min(nz - 1, int(math.floor((cz + hh + 1.0) / 0.4 - 0.5)) + 1)
        n = 0
        for i in range(i0, i1 + 1):
            dx = -40.0 + (i + 0.5) * 0.4 - cx
            for j in range(j0, j1 + 1):
                dy = -40.0 + (j + 0.5) * 0.4 - cy
                if abs(c * dx + s * dy) > hl or abs(-s * dx + c * dy) > hw:
                    continue
                for k in range(k0, k1 + 1):
                    if abs(-1.0 + (k + 0.5) * 0.4 - cz) > hh:
                        continue
                    n += 1
                    if write:
                        sem[i, j, k] = cls[b]
                        inst[i, j, k] = ids[b]
        counts[b] += n


def boxes_in_ego(boxes_global: np.ndarray, ego_to_global: np.ndarray) -> np.ndarray:
    """Global boxes [B, 7] -> boxes in the ego frame of a planar 4x4 pose (same layout)."""
    r = ego_to_global[:3, :3]
    t = ego_to_global[:3, 3]
    out = boxes_global.copy()
    out[:, :3] = (boxes_global[:, :3] - t) @ r
    out[:, 6] = boxes_global[:, 6] - math.atan2(r[1, 0], r[0, 0])
    return out

"""Named routes where no road graph exists (nuScenes, occ-folder): lanes and junctions read from the
driveable surface of the observed occupancy at the start frame.

The start frame's labels [X, Y, Z] = [200, 200, 16] (ego frame: x forward, y left, 0.4 m voxels,
the ego's rear axle at the grid centre) give two top-down masks: `road` (columns whose ground is
driveable surface, and columns under a vehicle, which hides the road below it) and `blocked`
(obstacle voxels at the ego's height, as the safety report counts them). Right-hand traffic.

- the ego's lane line starts at the ego's lateral position and follows the middle of the road
  where the road keeps its width (a curve), holding its offset where the road widens (a junction,
  a bay);
- a junction is a stretch of at least JUNCTION_MIN along the lane line where the road's edge on one
  side opens by JUNCTION_OPEN or more; the turn is a circular arc into the exit lane of the branch
  (its right half) and straight on along it;
- an adjacent lane is road LANE_WIDTH to the side over the next LANE_CHANGE_LENGTH;
- every route stops behind the first obstacle on it (STOP_GAP before the ego's front bumper), as a
  driver would behind a vehicle standing there: one frame cannot tell a parked car from a moving
  one; `stop` also stops, at STOP_DECEL, when nothing is in the way.
Speeds: the cruise speed, capped by curvature (LATERAL_ACC) and braking; beyond the grid's 40 m a
route goes straight on. A route counts when at least ON_ROAD of its samples over known ground (a
column holding any label) are road; otherwise it does not exist and `surface_route` raises
BadInput naming those that do.
"""

from __future__ import annotations

import math

import numpy as np
from ..data.occ3d import CLASS_INDEX, FREE, GRID_SHAPE, RANGE_MIN, VOXEL_SIZE
from ..data.synthetic.config import EGO_LENGTH, EGO_REAR_AXLE_TO_CENTRE, EGO_WIDTH
from ..data.synthetic.routes import ROUTES
from ..errors import BadInput
from ..metrics.safety import BOX_LAYERS, DRIVEABLE, OBSTACLE_IDS
from ..data.scene import KEYFRAME_DT

LANE_WIDTH = 3.5
JUNCTION_OPEN = 6.0  # m the road's edge must open by on one side for a junction
JUNCTION_MIN = 5.0  # m along the lane line the opening must last (a driveway is narrower)
TURN_RADIUS_MIN = 5.0
LANE_CHANGE_LENGTH = 25.0  # m of adjacent lane that must be road, and the shift's least length
LATERAL_ACC = 3.0  # m/s^2 on curves
STOP_DECEL = 3.0  # m/s^2 for a stop with room
MAX_DECEL = 8.0  # m/s^2 at most, when an obstacle is nearer than a comfortable stop
ACCEL = 2.0  # m/s^2 back up to cruise speed
STOP_GAP = 2.0  # m between the ego's front bumper and the obstacle it stops behind
ON_ROAD = 0.9
DS = 0.25  # m between path samples
FRONT = EGO_REAR_AXLE_TO_CENTRE + EGO_LENGTH / 2  # rear axle to front bumper
_VEHICLES = [CLASS_INDEX[c] for c in ("bus", "car", "construction_vehicle", "motorcycle", "trailer", "truck", "bicycle")]
_HALF = GRID_SHAPE[0] * VOXEL_SIZE / 2  # 40 m


def surface_masks(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(road, blocked, known) top-down masks [X, Y] bool of ego-frame labels [X, Y, Z]; `known`:
    columns holding any label (Occ3D leaves what no sensor saw free, which says nothing about the
    ground there)."""
    road = (labels == DRIVEABLE).any(-1)
    under_vehicle = np.isin(labels, _VEHICLES).any(-1)
    blocked = np.isin(labels[:, :, BOX_LAYERS], OBSTACLE_IDS).any(-1)
    return road | under_vehicle, blocked, (labels != FREE).any(-1)


def _cell(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid cell (ix, iy) of ego-frame points and whether it lies inside the grid."""
    ix = np.floor((np.asarray(x) - RANGE_MIN[0]) / VOXEL_SIZE).astype(np.int64)
    iy = np.floor((np.asarray(y) - RANGE_MIN[1]) / VOXEL_SIZE).astype(np.int64)
    inside = (ix >= 0) & (ix < GRID_SHAPE[0]) & (iy >= 0) & (iy < GRID_SHAPE[1])
    return np.clip(ix, 0, GRID_SHAPE[0] - 1), np.clip(iy, 0, GRID_SHAPE[1] - 1), inside


def _run(road: np.ndarray, ix: int, iy: int) -> tuple[float, float] | None:
    """Lateral extent (y_lo, y_hi) in m of the road run through cell (ix, iy), or None off road."""
    col = road[ix]
    if not col[iy]:
        return None
    lo = iy
    while lo > 0 and col[lo - 1]:
        lo -= 1
    hi = iy
    while hi < len(col) - 1 and col[hi + 1]:
        hi += 1
    return RANGE_MIN[1] + lo * VOXEL_SIZE, RANGE_MIN[1] + (hi + 1) * VOXEL_SIZE


def lane_line(road: np.ndarray, y0: float, x_from: float = 0.0) -> np.ndarray:
    """[N, 4] (x, y, y_lo, y_hi) along the ego's lane every voxel row from `x_from` to where the road
    ends or the grid does: y follows the road's middle where the road keeps its width, and holds
    where it widens or narrows (junctions, bays, parked cars)."""
    rows = []
    y = y0
    prev = None
    width0 = None
    x = x_from
    while x < _HALF - VOXEL_SIZE / 2:
        ix, iy, inside = _cell(np.array(x), np.array(y))
        run = _run(road, int(ix), int(iy)) if inside else None
        if run is None:
            break
        width = run[1] - run[0]
        if width0 is None:
            width0 = width
        if prev is not None and abs(width - width0) < 1.5 and abs((prev[1] - prev[0]) - width0) < 1.5:
            shift = (run[0] + run[1]) / 2 - (prev[0] + prev[1]) / 2  # the road bends
            y += float(np.clip(shift, -0.06, 0.06))
        rows.append((x, y, *run))
        prev = run
        x += VOXEL_SIZE
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _polyline(points: list[tuple[float, float]], length: float) -> np.ndarray:
    """Resample a polyline [(x, y), ...] every DS m and extend it straight to `length`; [N, 3]
    (x, y, heading)."""
    p = np.asarray(points, dtype=np.float64)
    seg = np.hypot(*np.diff(p, axis=0).T)
    keep = np.r_[True, seg > 1e-9]
    p = p[keep]
    s = np.r_[0.0, np.cumsum(np.hypot(*np.diff(p, axis=0).T))]
    end_dir = p[-1] - p[-2]
    end_dir /= np.linalg.norm(end_dir)
    if s[-1] < length:
        p = np.vstack([p, p[-1] + end_dir * (length - s[-1])])
        s = np.r_[s, length]
    q = np.arange(0.0, max(length, DS), DS)
    x, y = np.interp(q, s, p[:, 0]), np.interp(q, s, p[:, 1])
    heading = np.unwrap(np.arctan2(np.gradient(y), np.gradient(x)))
    return np.stack([x, y, heading], axis=1)


def _arc(x0: float, y0: float, radius: float, sign: float) -> list[tuple[float, float]]:
    """A quarter circle from (x0, y0) heading +x, turning left (sign +1) or right (-1)."""
    a = np.linspace(0.0, math.pi / 2, 24)
    return [(x0 + radius * math.sin(t), y0 + sign * radius * (1 - math.cos(t))) for t in a]


def _junctions(line: np.ndarray, sign: float) -> list[tuple[float, float]]:
    """(x_centre, width) of the openings of the road on side `sign` (+1 left, -1 right) along a
    lane line."""
    if len(line) < 5:
        return []
    edge = line[:, 3] if sign > 0 else line[:, 2]
    base = float(np.median(edge[: max(5, len(edge) // 4)]))
    reach_grid = (edge >= _HALF - 1e-6) if sign > 0 else (edge <= -_HALF + 1e-6)
    open_ = (sign * (edge - base) >= JUNCTION_OPEN) | (reach_grid & (sign * (edge - base) > 1e-6))
    out = []
    k = 0
    while k < len(open_):
        if not open_[k]:
            k += 1
            continue
        j = k
        while j + 1 < len(open_) and open_[j + 1]:
            j += 1
        x0, x1 = line[k, 0], line[j, 0] + VOXEL_SIZE
        if x1 - x0 >= JUNCTION_MIN:
            out.append(((x0 + x1) / 2, x1 - x0))
        k = j + 1
    return out


def _base_edges(line: np.ndarray) -> tuple[float, float]:
    n = max(5, len(line) // 4)
    return float(np.median(line[:n, 2])), float(np.median(line[:n, 3]))


def route_geometry(road: np.ndarray, blocked: np.ndarray, known: np.ndarray, move: str, length: float,
                   speed: float) -> np.ndarray | None:
    """[N, 3] (x, y, heading) of the rear axle along `move` from the ego (origin, heading +x), or
    None when the surface has no such route."""
    line = lane_line(road, 0.0)
    if len(line) < 5:  # the ego is not on a road with at least 2 m of it ahead
        return None
    base_lo, base_hi = _base_edges(line)
    if move in ("straight", "stop"):
        path = _polyline([(0.0, 0.0)] + [(x, y) for x, y in line[:, :2]], length)
        if move == "stop":  # only the stretch it brakes along (and its bumper beyond) must be road
            reach = speed * speed / (2 * STOP_DECEL) + FRONT
            return path if _on_road(road, known, path[: int(reach / DS) + 1]) else None
    elif move in ("turn_left", "turn_right"):
        sign = 1.0 if move == "turn_left" else -1.0
        path = None
        for xb, wb in _junctions(line, sign):
            x_exit = xb + sign * (wb / 4 if wb >= 2 * LANE_WIDTH else 0.0)  # the branch's right-hand lane
            k = int(np.clip(np.searchsorted(line[:, 0], x_exit), 0, len(line) - 1))
            yc = float(line[k, 1])
            beyond = (base_hi - yc) if sign > 0 else (yc - base_lo)  # across the road to its far edge
            radius = max(TURN_RADIUS_MIN, beyond + 1.0)
            x_start = x_exit - radius
            if x_start < 1.0:
                continue
            k0 = int(np.searchsorted(line[:, 0], x_start))
            pts = [(0.0, 0.0)] + [(x, y) for x, y in line[:k0, :2]] + _arc(x_start, float(line[min(k0, len(line) - 1), 1]), radius, sign)
            ex, ey = pts[-1]
            pts.append((ex, ey + sign * max(length, 1.0)))
            path = _polyline(pts, length)
            if _on_road(road, known, path):
                break
            path = None
        if path is None:
            return None
    else:  # lane changes
        sign = 1.0 if move == "lane_change_left" else -1.0
        shift = max(LANE_CHANGE_LENGTH, speed * 3.0)
        x0 = 2.0
        ahead = first_obstacle(blocked, _polyline([(0.0, 0.0)] + [(x, y) for x, y in line[:, :2]], length))
        if ahead is not None:  # be in the other lane before reaching what stands in this one
            shift = min(shift, max(10.0, 1.4 * (ahead - x0)))
        target = lane_line(road, sign * LANE_WIDTH, x0)
        if len(target) * VOXEL_SIZE < min(LANE_CHANGE_LENGTH, _HALF - x0 - 1.0):
            return None
        lo, hi = _base_edges(target)
        if not (lo + 1.0 <= target[0, 1] <= hi - 1.0):  # the target lane lies inside the road
            return None
        xs = np.arange(x0, x0 + shift + DS, 1.0)
        ys = sign * LANE_WIDTH * (1 - np.cos(np.pi * (xs - x0) / shift)) / 2
        pts = [(0.0, 0.0)] + list(zip(xs, ys)) + [(x, y) for x, y in target[:, :2] if x > x0 + shift]
        path = _polyline(pts, length)
    return path if _on_road(road, known, path) else None


def _on_road(road: np.ndarray, known: np.ndarray, path: np.ndarray) -> bool:
    """At least ON_ROAD of the path's samples over known ground in the grid are road."""
    ix, iy, inside = _cell(path[:, 0], path[:, 1])
    seen = inside & known[ix, iy]
    return bool(seen.any()) and float(road[ix[seen], iy[seen]].mean()) >= ON_ROAD


def first_obstacle(blocked: np.ndarray, path: np.ndarray) -> float | None:
    """Arc length of the rear axle where the ego's front bumper (its width and 0.2 m each side)
    first meets an obstacle, or None."""
    across = np.linspace(-(EGO_WIDTH / 2 + 0.2), EGO_WIDTH / 2 + 0.2, 9)  # [9] points along the bumper
    c, s = np.cos(path[:, 2]), np.sin(path[:, 2])
    fx = path[:, 0, None] + FRONT * c[:, None] - across[None] * s[:, None]  # [N, 9]
    fy = path[:, 1, None] + FRONT * s[:, None] + across[None] * c[:, None]
    ix, iy, inside = _cell(fx, fy)
    hit = np.flatnonzero((inside & blocked[ix, iy]).any(axis=1))
    return float(hit[0] * DS) if len(hit) else None


def speed_profile(path: np.ndarray, cruise: float, stop_at: float | None) -> np.ndarray:
    """[N] speed at each path sample, starting at `cruise`: capped by curvature, braking to 0 at
    `stop_at` (m of arc), accelerating back at ACCEL."""
    n = len(path)
    curv = np.abs(np.gradient(path[:, 2])) / DS
    v = np.minimum(cruise, np.sqrt(LATERAL_ACC / np.maximum(curv, 1e-6)))
    decel = STOP_DECEL
    if stop_at is not None:
        k = int(np.clip(round(stop_at / DS), 0, n - 1))
        v[k:] = 0.0
        if stop_at > 0:
            decel = float(np.clip(cruise * cruise / (2 * stop_at), STOP_DECEL, MAX_DECEL))
    for k in range(n - 2, -1, -1):  # brake in time for every cap ahead
        v[k] = min(v[k], math.sqrt(v[k + 1] ** 2 + 2 * decel * DS))
    for k in range(1, n):  # and accelerate no harder than ACCEL
        v[k] = min(v[k], math.sqrt(v[k - 1] ** 2 + 2 * ACCEL * DS))
    return v


def drive(path: np.ndarray, v: np.ndarray, steps: int) -> np.ndarray:
    """[steps, 3] (x, y, yaw) at the keyframes t = 0.5, 1.0, ... s along `path` at speeds `v`."""
    mean = (v[1:] + v[:-1]) / 2
    dt = np.where(mean > 1e-3, DS / np.maximum(mean, 1e-3), np.inf)
    t = np.r_[0.0, np.cumsum(dt)]
    want = KEYFRAME_DT * np.arange(1, steps + 1)
    finite = np.isfinite(t)
    tt, pp = t[finite], path[finite]
    return np.stack([np.interp(want, tt, pp[:, c]) for c in range(3)], axis=1)


def surface_route(labels: np.ndarray, move: str, speed: float, steps: int, where: str) -> np.ndarray:
    """[steps, 3] (x, y, yaw) of the ego at the keyframes after the start, in the start ego frame,
    driving `move` on the observed driveable surface `labels` [X, Y, Z]; BadInput when there is no
    such route, naming the ones there are."""
    masks = surface_masks(labels)
    length = max(speed, 2.0) * steps * KEYFRAME_DT + 15.0
    path = route_geometry(*masks, move, length, speed)
    if path is None:
        have = [m for m in ROUTES if m != move and route_geometry(*masks, m, length, speed) is not None]
        raise BadInput(f"--traj {move}: the driveable surface at {where} has no such route (lanes and junctions are read "
                       f"from the observed occupancy); the routes it has: {', '.join(have) or 'none'} (or a waypoint file, "
                       f"or the fixed shape fixed_{move})")
    stop_at = first_obstacle(masks[1], path)
    if stop_at is not None:
        stop_at = max(0.0, stop_at - STOP_GAP)
    if move == "stop" and stop_at is None:
        stop_at = speed * speed / (2 * STOP_DECEL)
    v = speed_profile(path, speed, stop_at)
    return drive(path, v, steps)

"""Named ego manoeuvres along the road graph of a synthetic scene: the routes `forecast` and
`generate` drive for `--traj turn_left` and the like.

A synthetic scene is a pure function of (seed, index, config), so its road network (and the map →
global transform) is rebuilt from those alone, without re-running the simulation. From the ego's
pose at the start frame the route:
- `straight` follows the ego's lane (straight through junctions; at the end of a T it takes the
  exit that keeps its side, right first);
- `turn_left` / `turn_right` take the left / right exit of the next junction ahead (none when it
  has no such exit), moving first into the inner / outer lane where the road has two;
- `lane_change_left` / `lane_change_right` move into the adjacent lane of the same direction;
- `stop` follows the lane and brakes to a stop behind the first obstacle in it (a vehicle of the
  log at the start frame), or at the next stop line when the lane ahead is clear.
Speeds: the requested speed, capped by curvature (lateral acceleration ≤ A_LAT) and by the lead
vehicle (the nearest agent of the scene's simulation in the lane ahead, replayed, past the scene's
end too), with bounded acceleration and braking. Poses are sampled at the keyframe rate in the start ego frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from pipelines.data.synthetic.config import EGO_LENGTH, EGO_REAR_AXLE_TO_CENTRE, LANE_WIDTH, SyntheticConfig
from pipelines.data.synthetic.frame import MapFrame, network_extent, scene_streams
from pipelines.data.synthetic.paths import DS, Path, PathBuilder, move_options, traverse
from pipelines.data.synthetic.roads import DIRS, RoadNetwork, build_network, heading_yaw, right_normal

ROUTES = ("straight", "turn_left", "turn_right", "lane_change_left", "lane_change_right", "stop")
A_LAT = 3.0  # m/s^2 allowed in curves
A_MAX, B_MAX = 2.0, 3.0  # m/s^2 acceleration and comfortable braking
GAP = 2.5  # m kept to the vehicle ahead (bumper to bumper), also when stopping behind it
LANE_CHANGE_S = 3.0  # s a lane change takes
CORRIDOR = 1.6  # m either side of the path where an object counts as in the lane
KEYFRAME_S = 0.5
JOIN = 6.0  # m ahead of the ego where a lane change starts from the lane centre


@dataclass
class SceneRoads:
    net: RoadNetwork
    frame: MapFrame  # map <-> global

    def to_map(self, pose: np.ndarray) -> tuple[float, float, float]:
        return self.frame.to_map(pose)


def scene_roads(seed: int, index: int, config: SyntheticConfig) -> SceneRoads:
    """The road network and map frame of scene `index`, drawn from the streams `Simulated` draws
    them from, without simulating."""
    streams = scene_streams(seed, index)
    return SceneRoads(build_network(config, streams[0], extent=network_extent(config)), MapFrame.draw(streams[5]))


@dataclass
class LanePosition:
    i: int  # the node ahead
    j: int
    h: int  # heading index (E, N, W, S)
    lane: int
    u: float  # m before the node centre


def _wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


def locate(net: RoadNetwork, x: float, y: float, yaw: float) -> LanePosition | None:
    """The lane the ego drives in and the next node whose stop line is ahead, or None (inside a
    junction, or off the lanes)."""
    h = int(round(yaw / (math.pi / 2))) % 4
    if abs(_wrap(yaw - heading_yaw(h))) > math.radians(25):
        return None
    p = np.array([x, y])
    if h % 2 == 0:  # east-west: a road at y = ys[j]
        j = int(np.argmin(np.abs(net.ys - y)))
        along = net.xs
        road = net.hroads[j]
        centre = np.array([0.0, net.ys[j]])
    else:
        i = int(np.argmin(np.abs(net.xs - x)))
        along = net.ys
        road = net.vroads[i]
        centre = np.array([net.xs[i], 0.0])
    offset = float((p - centre) @ right_normal(h))
    lanes = [road.lane_offset(k) for k in range(road.lanes)]
    lane = int(np.argmin([abs(offset - o) for o in lanes]))
    if abs(offset - lanes[lane]) > LANE_WIDTH * 0.75:
        return None
    coord = x if h % 2 == 0 else y
    sign = DIRS[h][h % 2]
    order = np.argsort(along) if sign > 0 else np.argsort(-along)
    for k in order:
        u = float((along[k] - coord) * sign)
        ii, jj = (int(k), j) if h % 2 == 0 else (i, int(k))
        if u - net.stop_dist(ii, jj, h) > 0.5:
            if not _segment_to(net, ii, jj, h):
                return None  # the road does not reach that node (the ego is on a dead end)
            return LanePosition(ii, jj, h, lane, u)
    return None


def _segment_to(net: RoadNetwork, i: int, j: int, h: int) -> bool:
    """Whether the road arriving at node (i, j) with heading h exists."""
    back = (h + 2) % 4
    return net.arm(i, j, back)


def _exits(net: RoadNetwork, i: int, j: int, h: int) -> set[str]:
    return {m for m in ("straight", "left_turn", "right_turn")
            if net.arm(i, j, {"straight": h, "left_turn": (h + 1) % 4, "right_turn": (h + 3) % 4}[m])}


def _continue(b: PathBuilder, net: RoadNetwork, i: int, j: int, h: int, lane: int, length: float) -> None:
    """Follow the lane: straight through junctions, else the exit that keeps the lane's side."""
    guard = 0
    while b.length < length and guard < 50:
        guard += 1
        b.line_to(net.lane_point(i, j, h, lane, -net.stop_dist(i, j, h)))
        if b.length >= length:
            return
        opts = _exits(net, i, j, h)
        move = "straight" if "straight" in opts else ("right_turn" if "right_turn" in opts else "left_turn")
        i, j, h, lane = traverse(b, net, i, j, h, lane, move)


def route_path(net: RoadNetwork, at: LanePosition, start: np.ndarray, yaw: float, move: str, length: float,
               speed: float) -> tuple[Path, float | None] | None:
    """The path of `move` from the ego at `start` (map frame), at least `length` m long, and the arc
    length where it must stop (`stop`'s stop line), or None when the move is impossible within
    `length`."""
    road = net.road_along(at.i, at.j, at.h)
    b = PathBuilder(start, yaw)
    i, j, h, lane, u = at.i, at.j, at.h, at.lane, at.u
    if move in ("lane_change_left", "lane_change_right"):
        target = lane - 1 if move == "lane_change_left" else lane + 1  # lane 0 is the innermost (left)
        if not 0 <= target < road.lanes:
            return None
        shift = max(15.0, speed * LANE_CHANGE_S)
        room = u - net.stop_dist(i, j, h) - 2.0 - JOIN
        if room < shift:
            return None
        lateral = road.lane_offset(lane) - road.lane_offset(target)  # to the left is positive
        b.line_to(net.lane_point(i, j, h, lane, -u + JOIN))  # onto the lane centre, along the lane
        b.shift(shift, lateral)
        _continue(b, net, i, j, h, target, length)
        return b.build(), None
    if move in ("straight", "stop"):
        _continue(b, net, i, j, h, lane, length)
        stop = None
        if move == "stop":
            stop = max(u - net.stop_dist(i, j, h) - 1.0, 0.5)
        return b.build(), stop
    want = "left_turn" if move == "turn_left" else "right_turn"
    if want not in _exits(net, i, j, h):
        return None  # the next junction has no such exit
    goal = 0 if want == "left_turn" else road.lanes - 1  # left turns from the inner lane, right from the outer
    stop_u = -net.stop_dist(i, j, h)
    if lane != goal:
        shift = min(max(12.0, speed * LANE_CHANGE_S), u + stop_u - 3.0)
        if shift < 8.0:
            return None  # too close to the junction to change lanes first
        b.line_to(net.lane_point(i, j, h, lane, stop_u - shift))
        b.shift(shift, road.lane_offset(lane) - road.lane_offset(goal))  # ends on the goal lane's stop line
        lane = goal
    else:
        b.line_to(net.lane_point(i, j, h, lane, stop_u))
    i, j, h, lane = traverse(b, net, i, j, h, lane, want)
    _continue(b, net, i, j, h, lane, max(length, b.length + 1.0))
    return b.build(), None


def available(net: RoadNetwork, at: LanePosition, start: np.ndarray, yaw: float, length: float, speed: float) -> list[str]:
    """The named routes that exist from this pose within `length` m."""
    return [m for m in ROUTES if route_path(net, at, start, yaw, m, length, speed) is not None]


def curvature_limit(path: Path) -> np.ndarray:
    """[M] speed limit from the heading change per metre: v ≤ sqrt(A_LAT / kappa)."""
    kappa = np.abs(np.gradient(path.yaw, DS))
    kappa = np.convolve(kappa, np.ones(9) / 9, mode="same")  # the chord of a 2 m window
    return np.sqrt(A_LAT / np.maximum(kappa, 1e-6))


def drive(path: Path, speed: float, steps: int, dt: float, v0: float, stop_s: float | None,
          obstacles=None, sub: int = 10) -> np.ndarray:
    """Drive the path: [steps, 3] map-frame (x, y, yaw) every `dt` s after the start.

    speed: the cruise speed; v0: the speed at the start; stop_s: arc length to stop at (None:
    none); obstacles(t) -> [K, 3] map-frame centres and half lengths of the objects at time t
    (the lead vehicle is the nearest one within CORRIDOR of the path ahead).
    """
    vlim = curvature_limit(path)
    s, v = 0.0, float(v0)
    h = dt / sub
    out = []
    pts = np.stack([path.x, path.y], 1)
    for step in range(steps * sub):
        t = step * h
        k = min(int(s / DS), len(vlim) - 1)
        ahead = vlim[k:k + int(max(v, 1.0) ** 2 / (2 * B_MAX) / DS) + 2]  # brake ahead of curves
        target = min(speed, float(ahead.min()) if len(ahead) else speed)
        limit_s = stop_s
        if obstacles is not None:
            objs = obstacles(t)
            if len(objs):
                d = np.linalg.norm(pts[None, k:k + 400] - objs[:, None, :2], axis=-1)  # [K, ahead samples]
                near = d.min(1) < CORRIDOR
                if near.any():
                    # the rear axle stops GAP behind the object's back: its centre less its half length
                    s_back = s + DS * d[near].argmin(1) - objs[near, 2]
                    gap_s = float(s_back.min()) - GAP - (EGO_REAR_AXLE_TO_CENTRE + EGO_LENGTH / 2)
                    limit_s = gap_s if limit_s is None else min(limit_s, gap_s)
        if limit_s is not None:
            target = min(target, math.sqrt(max(2 * B_MAX * max(limit_s - s, 0.0), 0.0)))
        v = min(v + A_MAX * h, target) if target > v else max(v - 2 * B_MAX * h, target)
        s = min(s + v * h, path.length)
        if (step + 1) % sub == 0:
            out.append(path.pose(s))
    return np.array(out)


# -- a dataset scene's route --------------------------------------------------------------------


def synthetic_origin(scene) -> tuple[int, int, SyntheticConfig] | None:
    """(seed, index, config) of a scene of a synthetic dataset made by this generator, else None
    (other sources, edited datasets, or datasets of an older generator: no road graph to use)."""
    from pipelines.data.sources.synthetic import GENERATOR_VERSION

    fields = scene.dataset.manifest.get("id_fields", {})
    if fields.get("source") != "synthetic" or fields.get("generator") != GENERATOR_VERSION:
        return None
    try:
        return int(fields["seed"]), int(scene.name.rsplit("-", 1)[-1]), SyntheticConfig(**fields["synthetic"])
    except (KeyError, TypeError, ValueError):
        return None


SIM_CHUNK = 50  # keyframes: runs past a scene's end are rounded up to this, so nearby requests share one


def simulated(seed: int, index: int, config: SyntheticConfig, beyond: int = 0):
    """The scene's simulation, run at least `beyond` keyframes past its end (its first frames do
    not depend on how far it runs, so a route and its counterfactual truth share one run)."""
    return _simulated(seed, index, config, -(-max(beyond, 0) // SIM_CHUNK) * SIM_CHUNK)


@functools.lru_cache(maxsize=2)
def _simulated(seed: int, index: int, config: SyntheticConfig, beyond: int):
    from pipelines.data.synthetic.generate import Simulated

    return Simulated(seed, index, config, extra_frames=beyond)


def _simulated_obstacles(sim, start: int):
    """obstacles(t) for `drive`: every simulated agent but the ego (map frame, centres and half
    lengths) t s after keyframe `start`, linear between keyframes."""
    x, y = sim.result.x[:, 1:], sim.result.y[:, 1:]  # [T, N-1] map-frame centres at the keyframes
    half = np.array([a.length / 2 for a in sim.agents[1:]])

    def at(t: float) -> np.ndarray:
        f = min(start + t / KEYFRAME_S, x.shape[0] - 1)
        k = min(int(f), x.shape[0] - 2)
        w = f - k
        return np.stack([x[k] + w * (x[k + 1] - x[k]), y[k] + w * (y[k + 1] - y[k]), half], 1)

    return at


def scene_route(scene, start: int, move: str, speed: float, steps: int) -> np.ndarray | None:
    """[steps, 3] (x, y, yaw) of the ego along `move` at the keyframes after `start`, in the start
    ego frame; None when the scene has no road graph (not synthetic). BadInput when the move does
    not exist from there, naming the ones that do."""
    from pipelines.errors import BadInput

    origin = synthetic_origin(scene)
    if origin is None:
        return None
    roads = scene_roads(*origin)
    pose = scene.poses[start]
    x, y, yaw = roads.to_map(pose)
    here = np.array([x, y])
    where = f"frame {start} of '{scene.name}'"
    at = locate(roads.net, x, y, yaw)
    if at is None:
        raise BadInput(f"--traj {move}: at {where} the ego is not in a lane (inside a junction); pick another --frame "
                       "or a waypoint file")
    v0 = float(scene.controls[start, 3])
    length = max(speed, 2.0) * steps * KEYFRAME_S + 15.0
    route = route_path(roads.net, at, here, yaw, move, length, speed)
    if route is None:
        have = available(roads.net, at, here, yaw, length, speed)
        raise BadInput(f"--traj {move}: no such route within {length:.0f} m from {where}; the routes that exist from "
                       f"there: {', '.join(have) or 'none'} (or a waypoint file)")
    path, stop = route
    sim = simulated(*origin, beyond=max(start + steps - (origin[2].frames - 1), 0))
    out = drive(path, speed, steps, KEYFRAME_S, v0, stop, _simulated_obstacles(sim, start))
    # map frame -> start ego frame
    c, s = math.cos(yaw), math.sin(yaw)
    d = out[:, :2] - here
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], out[:, 2] - yaw], 1)

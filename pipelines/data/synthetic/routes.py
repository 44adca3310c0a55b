"""Named ego manoeuvres along the road graph of a synthetic scene: the routes `forecast` and
`generate` drive for `--traj turn_left` and the like.

A synthetic scene is a pure function of (seed, index, config), so its road network (and the map →
global transform) is rebuilt from those alone, without re-running the simulation. From the ego's
pose at the start frame the route:
- `straight` follows the ego's lane (straight through junctions; at the end of a T it takes the
  exit that keeps its side, right first);
- `turn_left` / `turn_right` take the left / right exit of the next junction ahead (none when it
  has no such exit), moving first into the inner / outer lane where the road has two, then
  follow the new lane straight (stopping where it ends at a T instead of turning again);
- `lane_change_left` / `lane_change_right` move into the adjacent lane of the same direction;
- `stop` follows the lane and brakes to a stop behind the first obstacle in it, or at the next
  stop line (as soon as braking at B_STOP allows where that line is nearer).

The route is driven in the scene's own simulation (`Simulated.rerouted`): from its logged state at
the start frame the ego follows the route's path under the simulator's controller, at the
requested cruise speed capped by curvature (paths.A_LAT, below 3 m/s^2), car-following (IDM) the
vehicle ahead, waiting at red lights and for the junction to clear, and the others react to it as
to any agent. The simulator never lets two boxes overlap (an agent that would is held), so no
route collides; on a lane change the vehicles of the target lane brake for the ego. The truth of
the route (`resimulate`) is that run. Poses are sampled at the
keyframe rate in the start ego frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..scene import KEYFRAME_DT
from .config import EGO_REAR_AXLE_TO_CENTRE, LANE_WIDTH, SyntheticConfig
from .frame import MapFrame, network_extent, scene_streams
from .paths import Path, PathBuilder, traverse
from .roads import DIRS, RoadNetwork, build_network, heading_yaw, right_normal
from .sim import STATIC
from .traffic import Agent

ROUTES = ("straight", "turn_left", "turn_right", "lane_change_left", "lane_change_right", "stop")
LANE_CHANGE_S = 3.0  # s a lane change takes
ROUTE_BACK = 10.0  # m of route path behind the ego's centre at the start
B_STOP = 3.0  # m/s^2: a stop line closer than this braking allows is passed, the ego stops beyond it
WALL_AHEAD = 2.0  # m past the stop line of a `stop` route's wall: IDM rests the bumper s0 + margin before it
JOIN = 6.0  # m ahead of the ego where a route reaches its lane's centre, at least


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


def ego_centre(x: float, y: float, yaw: float) -> np.ndarray:
    """The ego box's centre from its rear-axle pose (map frame)."""
    return np.array([x + EGO_REAR_AXLE_TO_CENTRE * math.cos(yaw), y + EGO_REAR_AXLE_TO_CENTRE * math.sin(yaw)])


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
               speed: float, back: float = 0.0) -> tuple[Path, float | None] | None:
    """The path of `move` for an ego whose centre is at `start` (map frame) heading `yaw` and
    located at `at`: it begins `back` m behind the centre, joins the lane centre ahead, runs at
    least `length` m. Returns it and the arc length along it where the route stops (None:
    nowhere): `stop`'s next stop line, a turn's first junction after the turn that has no
    straight exit; or None when the move is impossible within `length`."""
    road = net.road_along(at.i, at.j, at.h)
    start = np.asarray(start, dtype=np.float64)
    b = PathBuilder(start - back * np.array([math.cos(yaw), math.sin(yaw)]), yaw)
    b.line_to(start)
    i, j, h, lane, u = at.i, at.j, at.h, at.lane, at.u
    # Onto the lane centre first: the ego may stand off it (mid lane change, pulling out of a bay).
    off = abs(float((start - net.lane_point(i, j, h, lane, -u)) @ right_normal(h)))
    join = min(max(JOIN, speed, 5.0 * off), max(u - net.stop_dist(i, j, h) - 1.0, 0.5))
    b.line_to(net.lane_point(i, j, h, lane, -u + join))
    u -= join
    if move in ("lane_change_left", "lane_change_right"):
        target = lane - 1 if move == "lane_change_left" else lane + 1  # lane 0 is the innermost (left)
        if not 0 <= target < road.lanes:
            return None
        shift = max(15.0, speed * LANE_CHANGE_S)
        if u - net.stop_dist(i, j, h) - 2.0 < shift:
            return None
        b.shift(shift, road.lane_offset(lane) - road.lane_offset(target))  # to the left is positive
        _continue(b, net, i, j, h, target, length)
        return b.build(), None
    if move in ("straight", "stop"):
        stop = b.length + u - net.stop_dist(i, j, h) if move == "stop" else None  # the next stop line
        _continue(b, net, i, j, h, lane, length)
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
    s_turn = b.events[-1][0]
    _continue(b, net, i, j, h, lane, max(length, b.length + 1.0))
    path = b.build()
    # After its turn the route keeps the new heading: where the road ends (a T) it stops there
    # rather than turning again (the path runs on through the junction for the look-ahead).
    again = [s for s, kind, _ in path.events if s > s_turn and kind != "straight"]
    return path, (again[0] if again else None)


def available(net: RoadNetwork, at: LanePosition, start: np.ndarray, yaw: float, length: float, speed: float) -> list[str]:
    """The named routes that exist from this pose within `length` m."""
    return [m for m in ROUTES if route_path(net, at, start, yaw, m, length, speed) is not None]


# -- a dataset scene's route --------------------------------------------------------------------


def synthetic_origin(scene) -> tuple[int, int, SyntheticConfig] | None:
    """(seed, index, config) of a scene of a synthetic dataset made by this generator, else None
    (other sources, edited datasets, or datasets of an older generator: no road graph to use)."""
    from ..sources.synthetic import GENERATOR_VERSION

    fields = scene.dataset.manifest.get("id_fields", {})
    if fields.get("source") != "synthetic" or fields.get("generator") != GENERATOR_VERSION:
        return None
    try:
        return int(fields["seed"]), int(scene.name.rsplit("-", 1)[-1]), SyntheticConfig(**fields["synthetic"])
    except (KeyError, TypeError, ValueError):
        return None


SIM_CHUNK = 50  # keyframes: runs past a scene's end are rounded up to this, so nearby requests share one


def simulated(seed: int, index: int, config: SyntheticConfig, beyond: int = 0):
    """The scene's simulation, run at least `beyond` keyframes past its end. Its first frames do
    not depend on how far it runs, so one run serves every request up to its length (a route, its
    counterfactual truth, a longer route later); the two latest scenes are kept."""
    from .generate import Simulated

    need = -(-max(beyond, 0) // SIM_CHUNK) * SIM_CHUNK
    key = (seed, index, config)
    run = _RUNS.pop(key, None)
    if run is None or run.extra_frames < need:
        run = Simulated(seed, index, config, extra_frames=need)
    _RUNS[key] = run
    while len(_RUNS) > 2:
        _RUNS.pop(next(iter(_RUNS)))
    return run


_RUNS: dict = {}  # (seed, index, config) -> Simulated, oldest first


def _stop_wall(path: Path, s: float) -> Agent:
    """A thin static box across the lane at arc length `s` of `path`: the stop point a `stop`
    route brakes to (IDM comes to rest s0 behind it), seen only by that run."""
    x, y, yaw = path.pose(s)
    return Agent(0, STATIC, 0.2, 0.5, 0.1, pose=(x, y, yaw), tag="stop_wall")


@dataclass
class Route:
    xyyaw: np.ndarray  # [steps, 3] the ego (rear axle) at the keyframes after the start, in the start ego frame
    sim: object  # the Simulated run with the ego on the route (frames up to the start are the log's)


def scene_route(scene, start: int, move: str, speed: float, steps: int) -> Route | None:
    """The ego driving `move` from keyframe `start` for `steps` keyframes, in the scene's own
    simulation (the others react to it by the simulator's rules: lights, gaps, no overlap); None
    when the scene has no road graph (not synthetic). BadInput when the move does not exist from
    there, naming the ones that do."""
    from ...errors import BadInput

    origin = synthetic_origin(scene)
    if origin is None:
        return None
    roads = scene_roads(*origin)
    x, y, yaw = roads.to_map(scene.poses[start])
    here = np.array([x, y])
    centre = ego_centre(x, y, yaw)
    where = f"frame {start} of '{scene.name}'"
    at = locate(roads.net, *centre, yaw)
    if at is None:
        raise BadInput(f"--traj {move}: at {where} the ego is not in a lane (inside a junction); pick another --frame "
                       "or a waypoint file")
    length = max(speed, 2.0) * steps * KEYFRAME_DT + 15.0
    if route_path(roads.net, at, centre, yaw, move, length, speed) is None:
        have = available(roads.net, at, centre, yaw, length, speed)
        raise BadInput(f"--traj {move}: no such route within {length:.0f} m from {where}; the routes that exist from "
                       f"there: {', '.join(have) or 'none'} (or a waypoint file)")
    out, sim = _driven(*origin, start, move, float(speed), int(steps))
    c, s = math.cos(yaw), math.sin(yaw)
    d = out[:, :2] - here
    return Route(np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], out[:, 2] - yaw], 1), sim)


@functools.lru_cache(maxsize=4)
def _driven(seed: int, index: int, config: SyntheticConfig, start: int, move: str, speed: float, steps: int):
    """([steps, 3] map-frame rear-axle poses, the rerouted Simulated) of `move` from `start`."""
    log = simulated(seed, index, config, beyond=max(start + steps - (config.frames - 1), 0))
    roads = scene_roads(seed, index, config)
    x, y, yaw = log.ego_map_poses(logged=True)[start]
    centre = ego_centre(x, y, yaw)
    at = locate(roads.net, *centre, yaw)
    # The path starts ROUTE_BACK behind the ego's centre (its rear axle must lie on it) and runs
    # past the farthest point it can reach by the look-ahead its controller checks.
    ego = log.agents[0]
    need = speed * steps * KEYFRAME_DT + ego.look + ego.length + 20.0
    path, stop = route_path(roads.net, at, centre, yaw, move, need, speed, back=ROUTE_BACK)
    walls = []
    if stop is not None:  # the front bumper rests near the stop line, or as soon as braking at B_STOP allows
        v = float(log.log.v[start, 0])
        soonest = ROUTE_BACK + ego.length / 2 + v * v / (2 * B_STOP) + ego.s0 + 1.5
        walls.append(_stop_wall(path, max(stop + WALL_AHEAD, soonest)))
    sim = log.rerouted(start, path, ROUTE_BACK, speed, steps, walls)
    return sim.ego_map_poses()[start + 1:start + 1 + steps], sim

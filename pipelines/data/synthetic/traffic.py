"""Traffic agents: their sizes and driving styles, where they spawn, and running the simulator.

Vehicles (cars, trucks — some pulling a trailer —, buses, motorcycles, bicycles) spawn on lanes
around the ego route, with queues behind red lights; pedestrians spawn on sidewalks. Each gets a
random route (`paths.py`) long enough for the whole scene. `run_simulation` packs everything
into flat arrays for the compiled loop in `sim.py` and returns keyframe poses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from ..occ3d import CLASS_INDEX
from ..scene import KEYFRAME_HZ
from . import sim
from .config import SyntheticConfig
from .paths import DS, Path, pedestrian_route, vehicle_route
from .roads import RoadNetwork, back_of
from .signals import Signals

VEHICLE_LOOK = 50.0  # m of corridor a vehicle checks at most
PED_LOOK = 4.0
TRAILER_GAP = 0.6  # m between a tractor's box and its trailer's box (they never turn)
PATH_BACK = 20.0  # m of path behind a vehicle's start (where its trailer sits)


@dataclass
class Agent:
    """One simulated object. Dimensions in metres; `s` is the arc length of the box centre."""

    cls: int  # Occ3D class index
    kind: int  # sim.VEHICLE / PEDESTRIAN / TRAILER / STATIC
    length: float
    width: float
    height: float
    path: Path | None = None
    s: float = 0.0
    v: float = 0.0
    v0: float = 0.0
    amax: float = 1.0
    b: float = 2.0
    s0: float = 2.0
    headway: float = 1.5
    look: float = VEHICLE_LOOK
    parent: int = -1  # index of the tractor, for trailers
    trail_off: float = 0.0
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # static agents: map-frame x, y, yaw
    tag: str = ""
    meta: dict = field(default_factory=dict)


# Size ranges (length, width, height) and driving styles per vehicle type.
_TYPES = {
    "car": dict(cls="car", l=(4.0, 4.9), w=(1.75, 2.0), h=(1.45, 1.85), v0=(10.0, 13.5), a=(1.6, 2.4), b=2.5, s0=2.0, T=(1.1, 1.6)),
    "truck": dict(cls="truck", l=(6.0, 7.8), w=(2.35, 2.55), h=(2.9, 3.7), v0=(9.0, 12.0), a=(0.9, 1.2), b=2.0, s0=2.5, T=(1.5, 1.9)),
    "tractor": dict(cls="truck", l=(5.6, 6.6), w=(2.45, 2.55), h=(3.2, 3.8), v0=(9.0, 11.5), a=(0.8, 1.0), b=2.0, s0=2.5, T=(1.6, 2.0)),
    "bus": dict(cls="bus", l=(10.5, 12.5), w=(2.5, 2.6), h=(3.0, 3.4), v0=(9.0, 11.0), a=(0.9, 1.2), b=2.0, s0=2.5, T=(1.5, 1.8)),
    "motorcycle": dict(cls="motorcycle", l=(1.9, 2.3), w=(0.7, 0.9), h=(1.4, 1.6), v0=(11.0, 13.5), a=(2.0, 3.0), b=3.0, s0=1.5, T=(0.9, 1.2)),
    "bicycle": dict(cls="bicycle", l=(1.6, 1.9), w=(0.55, 0.75), h=(1.6, 1.8), v0=(4.0, 6.0), a=(0.8, 1.2), b=2.0, s0=1.0, T=(1.0, 1.3)),
}
STRAIGHT_ONLY = ("bus", "tractor")
_MIX = (("car", 0.69), ("truck", 0.06), ("tractor", 0.04), ("bus", 0.05), ("motorcycle", 0.07), ("bicycle", 0.09))


def make_vehicle(vtype: str, rng: np.random.Generator) -> Agent:
    t = _TYPES[vtype]
    u = lambda r: float(rng.uniform(*r))  # noqa: E731
    return Agent(
        CLASS_INDEX[t["cls"]], sim.VEHICLE, u(t["l"]), u(t["w"]), u(t["h"]),
        v0=u(t["v0"]), amax=u(t["a"]), b=t["b"], s0=t["s0"], headway=u(t["T"]), look=VEHICLE_LOOK, tag=vtype,
    )


def make_trailer(rng: np.random.Generator) -> Agent:
    return Agent(CLASS_INDEX["trailer"], sim.TRAILER, float(rng.uniform(9.5, 12.5)), 2.5, float(rng.uniform(3.5, 3.9)), tag="trailer")


def make_pedestrian(rng: np.random.Generator) -> Agent:
    return Agent(
        CLASS_INDEX["pedestrian"], sim.PEDESTRIAN, float(rng.uniform(0.45, 0.75)), float(rng.uniform(0.45, 0.7)),
        float(rng.uniform(1.55, 1.9)), v0=float(rng.uniform(1.0, 1.6)), amax=1.0, b=1.5, s0=0.4, headway=0.5,
        look=PED_LOOK, tag="pedestrian",
    )


@dataclass
class Reserved:
    """A stretch of one lane where nothing may spawn: u (m before node (i, j)) in [u_lo, u_hi]."""

    i: int
    j: int
    h: int
    lane: int
    u_lo: float
    u_hi: float


def _near(points: np.ndarray, route: np.ndarray, margin: float) -> np.ndarray:
    """[P] bool: points [P, 2] within `margin` of any route point [R, 2]."""
    d2 = ((points[:, None, :] - route[None, :, :]) ** 2).sum(-1)
    return d2.min(axis=1) <= margin * margin


def _pick_type(rng: np.random.Generator, outer_lane: bool) -> str:
    names = [n for n, _ in _MIX if outer_lane or n != "bicycle"]
    w = np.array([p for n, p in _MIX if outer_lane or n != "bicycle"])
    return names[int(rng.choice(len(names), p=w / w.sum()))]


QUEUE_SHARE = 0.5  # of a lane's length between the stop line and the junction behind


def spawn_vehicles(
    net: RoadNetwork,
    sig: Signals,
    cfg: SyntheticConfig,
    rng: np.random.Generator,
    route: np.ndarray,
    reserved: list[Reserved],
) -> list[Agent]:
    """Moving vehicles on every lane near the route ([R, 2] map-frame points).

    Lanes are filled from the stop line upstream: behind a red light the first vehicles stand in
    a queue; the others keep a random gap of at least their IDM headway, with a speed that lets
    them stop behind whatever is ahead.
    """
    out: list[Agent] = []
    lo = route.min(axis=0) - cfg.vehicle_margin
    hi = route.max(axis=0) + cfg.vehicle_margin
    need = PATH_BACK + 14.0 * cfg.duration_s + VEHICLE_LOOK + 15.0
    mean_spacing = 100.0 / max(cfg.traffic_density, 1e-3)
    for i, j, p in net.interior_nodes_near(lo, hi, 150.0):
        for h in range(4):
            if not net.arm(i, j, back_of(h)):
                continue
            ip, jp = net.next_node(i, j, back_of(h))
            seg = net.segment_length(i, j, back_of(h))
            d_stop = net.stop_dist(i, j, h)
            d_exit = net.stop_dist(ip, jp, h)
            u_max = seg - d_exit - 0.5
            node = net.node_id(i, j)
            red = sig.time_to_green(node, h, 0.0) > 2.0
            road = net.road_along(i, j, h)
            for lane in range(road.lanes):
                res = [r for r in reserved if (r.i, r.j, r.h, r.lane) == (i, j, h, lane)]
                front = d_stop + 0.3  # u of the obstacle ahead (stop line or a rear bumper)
                lead_v = 0.0 if red else 1e9
                queue = red
                while True:
                    vtype = _pick_type(rng, lane == road.lanes - 1)
                    ag = make_vehicle(vtype, rng)
                    trailer = make_trailer(rng) if vtype == "tractor" else None
                    total = ag.length + (TRAILER_GAP + trailer.length if trailer else 0.0)
                    # A standing queue fills at most half of the block: one that filled it all
                    # would hold every car turning into the lane (they do not block the box)
                    # for a whole signal cycle, a gridlock no red phase builds.
                    queue = queue and front + total <= d_stop + QUEUE_SHARE * (u_max - d_stop)
                    if queue and rng.random() < 0.75:
                        gap = float(rng.uniform(1.8, 3.0))
                        v = 0.0
                    else:
                        queue = False
                        v = min(ag.v0, lead_v + 1.0)
                        gap = ag.s0 + v * ag.headway + float(rng.exponential(max(mean_spacing - 6.0, 3.0)))
                        if lead_v < 0.5:
                            v = min(ag.v0, float(np.sqrt(2 * 1.5 * max(gap - ag.s0 - 1.0, 0.0))))
                    u_c = front + gap + ag.length / 2
                    if u_c - ag.length / 2 + total > u_max:
                        break
                    front = u_c - ag.length / 2 + total
                    lead_v = v
                    pos = net.lane_point(i, j, h, lane, -u_c)
                    if np.any(pos < lo) or np.any(pos > hi) or not _near(pos[None], route, cfg.vehicle_margin)[0]:
                        continue
                    if any(r.u_lo <= u_c + ag.length / 2 and u_c - ag.length / 2 - (total - ag.length) <= r.u_hi for r in res):
                        continue
                    # Buses and articulated trucks only drive straight on: at our tight
                    # urban corners they would sweep over the neighbouring lanes.
                    straight = vtype in STRAIGHT_ONLY
                    built = vehicle_route(net, i, j, h, lane, u_c, need, rng, back=PATH_BACK, straight_only=straight)
                    if built is None:  # the road ends in a T-junction ahead: a car instead
                        trailer = None
                        ag = make_vehicle("car", rng)
                        built = vehicle_route(net, i, j, h, lane, u_c, need, rng, back=PATH_BACK)
                    b, s_c = built
                    ag.path = b.build()
                    ag.s, ag.v = s_c, v
                    out.append(ag)
                    if trailer is not None:
                        trailer.parent = -2  # resolved when packed: the agent right before
                        trailer.trail_off = ag.length / 2 + TRAILER_GAP + trailer.length / 2
                        out.append(trailer)
    return out


def spawn_pedestrians(
    net: RoadNetwork, cfg: SyntheticConfig, rng: np.random.Generator, route: np.ndarray
) -> list[Agent]:
    """Pedestrians on both walking lines of every sidewalk near the route."""
    out: list[Agent] = []
    lo = route.min(axis=0) - cfg.pedestrian_margin
    hi = route.max(axis=0) + cfg.pedestrian_margin
    need = 1.7 * cfg.duration_s + PED_LOOK + 5.0
    nx, ny = net.shape
    for axis in (0, 1):  # 0: along north-south roads, 1: along east-west roads
        for a in range(1, (nx if axis == 0 else ny) - 1):
            for b_ in range(1, (ny if axis == 0 else nx) - 1 - 1):
                i, j = (a, b_) if axis == 0 else (b_, a)
                h_fwd = 1 if axis == 0 else 0
                if not net.arm(i, j, h_fwd):
                    continue
                i2, j2 = net.next_node(i, j, h_fwd)
                for q in (-1, 1):
                    c_a = net.corner(i, j, q, 1) if axis == 0 else net.corner(i, j, 1, q)
                    c_b = net.corner(i2, j2, q, -1) if axis == 0 else net.corner(i2, j2, -1, q)
                    sw_a = (net.hroads[j].sidewalk if axis == 0 else net.vroads[i].sidewalk) / 2 + 0.8
                    sw_b = (net.hroads[j2].sidewalk if axis == 0 else net.vroads[i2].sidewalk) / 2 + 0.8
                    ax = 1 if axis == 0 else 0
                    t0, t1 = c_a[ax] + sw_a, c_b[ax] - sw_b
                    if t1 <= t0:
                        continue
                    mid = (c_a + c_b) / 2
                    if np.any(mid < lo - 80) or np.any(mid > hi + 80):
                        continue
                    for fwd in (True, False):
                        count = int(rng.poisson(cfg.pedestrian_density * (t1 - t0) / 200.0))
                        ts = np.sort(rng.uniform(t0, t1, count))
                        last = -1e9
                        for t in ts:
                            if t - last < 1.5:
                                continue
                            last = t
                            start = c_a.copy()
                            start[ax] = t
                            if np.any(start < lo) or np.any(start > hi) or not _near(start[None], route, cfg.pedestrian_margin)[0]:
                                continue
                            ag = make_pedestrian(rng)
                            h = h_fwd if fwd else back_of(h_fwd)
                            target = (i2, j2, q, -1) if axis == 0 else (i2, j2, -1, q)
                            if not fwd:
                                target = (i, j, q, 1) if axis == 0 else (i, j, 1, q)
                            bld = pedestrian_route(net, start, h, target, need, rng)
                            ag.path = bld.build()
                            ag.s, ag.v = 0.0, ag.v0 * float(rng.uniform(0.7, 1.0))
                            out.append(ag)
    return out


@numba.njit(cache=True)
def _conflicts(x, y, yaw, hl, hw, margin):  # pragma: no cover - jit
    """[N] bool: agents overlapping an earlier agent (the later one of each pair)."""
    n = x.shape[0]
    bad = np.zeros(n, np.bool_)
    hd = np.sqrt(hl * hl + hw * hw)
    for i in range(n):
        if bad[i]:
            continue
        for j in range(i + 1, n):
            if bad[j]:
                continue
            dx, dy = x[j] - x[i], y[j] - y[i]
            r = hd[i] + hd[j] + margin
            if dx * dx + dy * dy > r * r:
                continue
            if sim.boxes_overlap(x[i], y[i], yaw[i], hl[i], hw[i], x[j], y[j], yaw[j], hl[j], hw[j], margin):
                bad[j] = True
    return bad


def _resolve_parents(agents: list[Agent]) -> None:
    for k, ag in enumerate(agents):
        if ag.kind == sim.TRAILER and ag.parent == -2:
            ag.parent = k - 1


HALF_BASE = 0.3  # axles at +-0.3 length from a vehicle's centre


def half_base(agents: list[Agent]) -> np.ndarray:
    """[N] half distance between the axles that ride on the path (0 for pedestrians, statics)."""
    return np.array([HALF_BASE * a.length if a.kind in (sim.VEHICLE, sim.TRAILER) else 0.0 for a in agents])


def initial_pose(ag: Agent, agents: list[Agent]) -> tuple[float, float, float]:
    if ag.kind == sim.STATIC:
        return ag.pose
    if ag.kind == sim.TRAILER:
        tractor = agents[ag.parent]
        return tractor.path.body_pose(tractor.s - ag.trail_off, HALF_BASE * ag.length)
    return ag.path.body_pose(ag.s, HALF_BASE * ag.length if ag.kind == sim.VEHICLE else 0.0)


def drop_conflicts(agents: list[Agent]) -> list[Agent]:
    """Remove agents whose start box overlaps an earlier (higher-priority) one, with their trailer
    or tractor, so that the simulation starts from a valid state."""
    _resolve_parents(agents)
    poses = np.array([initial_pose(a, agents) for a in agents])
    hl = np.array([a.length / 2 for a in agents])
    hw = np.array([a.width / 2 for a in agents])
    bad = _conflicts(poses[:, 0], poses[:, 1], poses[:, 2], hl, hw, sim.SAFETY_MARGIN * 2)
    for k, a in enumerate(agents):
        if a.kind == sim.TRAILER and (bad[k] or bad[a.parent]):
            bad[k] = bad[a.parent] = True
    keep = [a for k, a in enumerate(agents) if not bad[k]]
    # Re-point trailers at their tractors after removal.
    for k, a in enumerate(keep):
        if a.kind == sim.TRAILER:
            a.parent = -2
    _resolve_parents(keep)
    return keep


@dataclass
class SimResult:
    x: np.ndarray  # [T, N] map-frame box centres
    y: np.ndarray
    yaw: np.ndarray
    v: np.ndarray  # [T, N] speed, m/s
    s: np.ndarray  # [T, N] arc length on the agent's path
    ego_trace: np.ndarray  # [steps + 1] arc length of agent 0 every step
    held: int  # agent-steps held back by the guarantee pass
    dt: float
    held_per_agent: np.ndarray  # [N] steps each agent was held
    held_by: np.ndarray  # [N] the agent each one last gave way to in the guarantee pass (-1: none)


def run_simulation(agents: list[Agent], sig: Signals, frames: int, sim_hz: int, t0: float = 0.0,
                   state: tuple[np.ndarray, np.ndarray] | None = None) -> SimResult:
    """Simulate `agents` (agent 0 first in priority) for frames-1 keyframe intervals.

    t0: the time of the first frame on the signals' clocks (a run resumed mid-scene); state: the
    agents' (s, v) [N] at that frame (default: each agent's own s and v)."""
    n = len(agents)
    paths: list[Path] = []
    pid = np.full(n, -1, np.int64)
    for k, a in enumerate(agents):
        if a.kind in (sim.VEHICLE, sim.PEDESTRIAN):
            pid[k] = len(paths)
            paths.append(a.path)
    for k, a in enumerate(agents):
        if a.kind == sim.TRAILER:
            pid[k] = pid[a.parent]
    lens = np.array([len(p.x) for p in paths], np.int64)
    path_off = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    cat = lambda attr: np.concatenate([getattr(p, attr) for p in paths]) if paths else np.zeros(1)  # noqa: E731
    zones = [z for p in paths for z in p.zones]
    zn = np.array([len(p.zones) for p in paths], np.int64)
    zoff = np.concatenate([[0], np.cumsum(zn)[:-1]]).astype(np.int64)
    zarr = np.array(zones, np.float64).reshape(-1, 4) if zones else np.zeros((1, 4))
    kind = np.array([a.kind for a in agents], np.int64)
    parent = np.array([a.parent for a in agents], np.int64)
    child = np.full(n, -1, np.int64)
    for k, a in enumerate(agents):
        if a.kind == sim.TRAILER:
            child[a.parent] = k
    f = lambda attr: np.array([getattr(a, attr) for a in agents], np.float64)  # noqa: E731
    s_init = f("s")
    for k, a in enumerate(agents):
        if a.kind == sim.TRAILER:
            s_init[k] = agents[a.parent].s - a.trail_off
    v_init = f("v")
    if state is not None:
        s_init, v_init = (np.array(a, np.float64) for a in state)
    stat = np.array([a.pose for a in agents], np.float64)
    rec = int(sim_hz // KEYFRAME_HZ)  # simulation steps per keyframe
    steps = (frames - 1) * rec
    out = [np.zeros((frames, n)) for _ in range(5)]
    trace = np.zeros(steps + 1)
    stats = np.zeros(2, np.int64)
    held_n = np.zeros(n, np.int64)
    held_by = np.full(n, -1, np.int64)
    sim.simulate(
        kind, parent, child, f("trail_off"), pid, path_off, lens, cat("x"), cat("y"), cat("yaw"), cat("vlim"), DS,
        zoff, zn, zarr[:, 0].copy(), zarr[:, 1].copy(), zarr[:, 2].astype(np.int64), zarr[:, 3].astype(np.int64),
        f("length"), f("width"), half_base(agents), f("v0"), f("amax"), f("b"), f("s0"), f("headway"), f("look"),
        np.arange(n, dtype=np.int64), s_init, v_init, stat[:, 0].copy(), stat[:, 1].copy(), stat[:, 2].copy(),
        sig.cycle, sig.offset + t0, sig.green_start, sig.green_end, sig.walk_start, sig.walk_end,
        1.0 / sim_hz, steps, rec, *out, trace, stats, held_n, held_by,
    )
    return SimResult(*out, trace, int(stats[0]), 1.0 / sim_hz, held_n, held_by)


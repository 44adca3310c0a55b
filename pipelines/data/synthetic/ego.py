"""The ego car: which manoeuvre a scene shows, its route, and traffic lights timed for it.

Scene kinds cycle with (index + seed) over SCENE_KINDS, so any five consecutive indices hold a
left turn, a right turn, a lane change, a stop-and-go and a straight drive. The ego is an
ordinary simulated vehicle with the highest priority; its manoeuvre is set up, not scripted:

- turns and straight drives: the ego starts 20-50 m before an intersection with its lane ahead
  kept clear, and the lights of every intersection on its route are timed (from a dry run of
  the ego alone) to turn green shortly before it arrives;
- stop-and-go: one or two vehicles queue at a red light ahead; the light turns green 2.5-5 s
  after the ego has come to a stand behind them, so it brakes, waits and drives off;
- lane change: on a road forced to two lanes per direction, the ego's path shifts one lane
  over 30-40 m of a block, with the target lane kept clear around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..occ3d import CLASS_INDEX
from . import sim
from .config import (
    EGO_HEIGHT,
    EGO_LENGTH,
    EGO_WIDTH,
    MAX_EGO_SPEED,
    SCENE_KINDS,
    SyntheticConfig,
)
from .paths import PathBuilder, move_options, traverse, vehicle_route
from .roads import RoadNetwork, back_of, heading_yaw, left_of, right_of
from .signals import Signals, replan
from .traffic import VEHICLE_LOOK, Agent, Reserved, make_vehicle, run_simulation

EGO_BACK = 5.0  # m of path behind the ego's start


def scene_kind(seed: int, index: int) -> str:
    """The manoeuvre a scene is built around (cycles with index, offset by seed)."""
    return SCENE_KINDS[(index + seed) % len(SCENE_KINDS)]


@dataclass
class EgoPlan:
    kind: str
    ego: Agent
    leads: list[Agent]
    reserved: list[Reserved]
    construction_block: tuple[int, int, str]  # block (i, j) and its edge facing the ego's road
    lane_change: tuple[float, float] | None  # (s_start, s_end) of the shift on the ego path
    route: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [R, 2] reachable path points


def _ego_agent(rng: np.random.Generator) -> Agent:
    return Agent(
        CLASS_INDEX["car"], sim.VEHICLE, EGO_LENGTH, EGO_WIDTH, EGO_HEIGHT,
        v0=float(rng.uniform(11.0, 13.5)), amax=float(rng.uniform(1.5, 2.0)), b=2.5, s0=2.0,
        headway=1.3, look=VEHICLE_LOOK, tag="ego",
    )


def _build_route(
    net: RoadNetwork, i: int, j: int, h: int, lane: int, u: float, length: float, first_move: str,
    rng: np.random.Generator, lc: tuple[int, float, float] | None,
) -> tuple[PathBuilder, list[tuple[int, int, int, int]]]:
    """Ego path: from `u` m before node (i, j), `first_move` there, then straight where possible.

    lc = (node number along the route, u before that node where the shift starts, shift length).
    Also returns the lanes the ego drives after each node, as (node ahead, heading, lane).
    """
    b = PathBuilder(net.lane_point(i, j, h, lane, -u - EGO_BACK), heading_yaw(h))
    k = 0
    segments: list[tuple[int, int, int, int]] = []  # (next node, heading, lane) after each node
    while b.length < length:
        if lc is not None and lc[0] == k:
            b.line_to(net.lane_point(i, j, h, lane, -lc[1]))
            road = net.road_along(i, j, h)
            new = 1 - lane
            s_lc = b.length
            b.shift(lc[2], road.lane_offset(lane) - road.lane_offset(new))
            b.events.append((s_lc, "lane_change", -1))
            lane = new
        b.line_to(net.lane_point(i, j, h, lane, -net.stop_dist(i, j, h)))
        opts = move_options(net, i, j, h, lane)
        if k == 0 and first_move in opts:
            move = first_move
        elif "straight" in opts:
            move = "straight"
        else:
            move = opts[int(rng.integers(len(opts)))]
        i, j, h, lane = traverse(b, net, i, j, h, lane, move)
        k += 1
        segments.append((i, j, h, lane))
    return b, segments


def _free_length(net: RoadNetwork, i: int, j: int, h: int) -> float:
    """Length of lane between the previous intersection's exit and node (i, j)'s stop line."""
    ip, jp = net.next_node(i, j, back_of(h))
    return net.segment_length(i, j, back_of(h)) - net.stop_dist(ip, jp, h) - net.stop_dist(i, j, h)


def plan_ego(net: RoadNetwork, kind: str, cfg: SyntheticConfig, rng: np.random.Generator) -> EgoPlan:
    """Pick where the ego starts and what it does; may widen the ego's road to two lanes."""
    ego = _ego_agent(rng)
    length = EGO_BACK + MAX_EGO_SPEED * cfg.duration_s + VEHICLE_LOOK + 30.0
    oi, oj = net.origin
    nodes = [(oi + di, oj + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    nodes = [nodes[4]] + [nodes[k] for k in rng.permutation(9) if k != 4]
    for i, j in nodes:
        for h in [int(x) for x in rng.permutation(4)]:
            if not net.arm(i, j, back_of(h)):
                continue
            plan = _try_plan(net, kind, cfg, rng, ego, i, j, h, length)
            if plan is not None:
                return plan
    raise RuntimeError("no intersection near the origin supports the ego manoeuvre")  # pragma: no cover


def _try_plan(net, kind, cfg, rng, ego, i, j, h, length) -> EgoPlan | None:
    road = net.road_along(i, j, h)
    lanes_before = road.lanes
    if kind == "lane_change":
        road.lanes = 2  # the ego's road gets two lanes per direction
    free = _free_length(net, i, j, h)
    d_stop = net.stop_dist(i, j, h)
    half = ego.length / 2
    lc = None
    leads: list[Agent] = []
    first_move = "straight"
    if kind == "left_turn":
        if not net.arm(i, j, left_of(h)):
            return None
        lane, first_move = 0, "left_turn"
        d0 = float(rng.uniform(20.0, 45.0))
        ego.v = float(rng.uniform(7.0, 10.0))
    elif kind == "right_turn":
        if not net.arm(i, j, right_of(h)):
            return None
        lane, first_move = road.lanes - 1, "right_turn"
        d0 = float(rng.uniform(20.0, 45.0))
        ego.v = float(rng.uniform(7.0, 10.0))
    elif kind == "straight":
        if not net.arm(i, j, h):
            return None
        lane = int(rng.integers(road.lanes))
        d0 = float(rng.uniform(10.0, 50.0))
        ego.v = float(rng.uniform(9.0, 12.5))
    elif kind == "stop_and_go":
        lane = int(rng.integers(road.lanes))
        opts = move_options(net, i, j, h, lane)
        first_move = opts[int(rng.integers(len(opts)))]
        d0 = float(rng.uniform(40.0, 60.0))
        ego.v = float(rng.uniform(8.0, 11.0))
        front = d_stop + 0.5
        for _ in range(int(rng.integers(1, 3))):
            lead = make_vehicle("car", rng)
            u_c = front + lead.length / 2
            if u_c + lead.length / 2 + 12.0 > d_stop + d0:
                break
            lead.meta["start"] = (i, j, h, lane, u_c)
            lead.v = 0.0
            lead.tag = "car"  # an ordinary car that happens to wait ahead of the ego
            leads.append(lead)
            front = u_c + lead.length / 2 + float(rng.uniform(2.0, 3.0))
    else:  # lane change
        if not net.arm(i, j, h):
            road.lanes = lanes_before
            return None
        lane = int(rng.integers(2))
        ego.v = float(rng.uniform(9.0, 11.5))
        lc_len = float(rng.uniform(30.0, 40.0))
        if free >= lc_len + 30.0:  # shift before the node
            d0 = min(free - 4.0 - ego.length, float(rng.uniform(lc_len + 20.0, lc_len + 45.0)))
            u_lc = d_stop + d0 + half - float(rng.uniform(4.0, 10.0))
            lc = (0, u_lc, lc_len)
        else:  # go straight through the node, shift on the next block
            i2, j2 = net.next_node(i, j, h)
            if not net.arm(i2, j2, back_of(h)) or _free_length(net, i2, j2, h) < lc_len + 25.0:
                road.lanes = lanes_before
                return None
            d0 = float(rng.uniform(10.0, 25.0))
            u_lc = net.segment_length(i, j, h) - net.stop_dist(i, j, h) - float(rng.uniform(6.0, 12.0))
            lc = (1, u_lc, lc_len)
    d0 = min(d0, free - ego.length - 1.0)
    if d0 < 5.0:
        road.lanes = lanes_before
        return None
    u0 = d_stop + d0 + half
    b, segments = _build_route(net, i, j, h, lane, u0, length, first_move, rng, lc)
    ego.path = b.build()
    ego.s = EGO_BACK
    # Leads drive the ego's move through the node, into the ego's (clear) exit lane.
    for lead in leads:
        li, lj, lh, ll, lu = lead.meta.pop("start")
        lb, ls = vehicle_route(net, li, lj, lh, ll, lu, length, rng, back=5.0, moves=[first_move])
        lead.path = lb.build()
        lead.s = ls
    # Keep the ego's lanes ahead (and 30 m behind it) clear of spawned traffic, and the target
    # lane of a shift: a queue standing in the ego's exit lane would keep it out of the
    # intersection (vehicles do not block the box).
    reserved = [Reserved(i, j, h, lane, -1e9, u0 + half + 30.0)]
    reserved += [Reserved(si, sj, sh, sl, -1e9, 1e9) for si, sj, sh, sl in segments]
    lc_span = None
    if lc is not None:
        s_lc = next(s for s, name, _ in ego.path.events if name == "lane_change")
        lc_span = (s_lc, s_lc + lc[2])
        if lc[0] == 0:
            reserved.append(Reserved(i, j, h, 1 - lane, -1e9, 1e9))
        else:
            i2, j2 = net.next_node(i, j, h)
            reserved.append(Reserved(i2, j2, h, 0, -1e9, 1e9))
            reserved.append(Reserved(i2, j2, h, 1, -1e9, 1e9))
    # The construction site sits in a block beside the ego's first block.
    ip, jp = net.next_node(i, j, back_of(h))
    right = rng.random() < 0.5
    if h % 2 == 1:  # north-south segment between rows min(j, jp)
        jj = min(j, jp)
        side_plus_x = (h == 1) == right  # heading north: right is +x
        block = (i, jj, "x0") if side_plus_x else (i - 1, jj, "x1")
    else:
        ii = min(i, ip)
        side_plus_y = (h == 2) == right  # heading west: right is +y
        block = (ii, j, "y0") if side_plus_y else (ii, j - 1, "y1")
    reach = ego.s + MAX_EGO_SPEED * cfg.duration_s + 10.0
    k = np.arange(0, min(len(ego.path.x), int(reach / 0.25)), 20)
    route = np.stack([ego.path.x[k], ego.path.y[k]], axis=1)
    return EgoPlan(kind, ego, leads, reserved, block, lc_span, route)


def program_lights(plan: EgoPlan, sig: Signals, net: RoadNetwork, cfg: SyntheticConfig, rng: np.random.Generator) -> None:
    """Time the lights on the ego's route from dry runs of the ego (and its leads) alone.

    Node by node: give the ego's approach a long green, find when the ego would reach the stop
    line with that light always green, then start the green 1-3 s before that moment. For the
    first node of a stop-and-go scene, find when the ego stops with the light always red and
    turn it green 2.5-5 s later.
    """
    ego = plan.ego
    agents = [ego] + plan.leads
    horizon = ego.s + MAX_EGO_SPEED * cfg.duration_s
    for k, (z0, _z1, node, app) in enumerate(ego.path.zones):
        if z0 > horizon:
            break
        i, j = divmod(int(node), len(net.ys))
        replan(sig, net, i, j, int(app), rng)
        stop_go = plan.kind == "stop_and_go" and k == 0
        saved = (sig.green_start[node].copy(), sig.green_end[node].copy())
        # Dry run with this approach always green (or, for a stop-and-go, never).
        sig.green_start[node, app], sig.green_end[node, app] = 0.0, (0.0 if stop_go else sig.cycle[node])
        res = run_simulation([_copy(a) for a in agents], sig, cfg.frames, cfg.sim_hz)
        sig.green_start[node], sig.green_end[node] = saved
        if stop_go:
            # Green a few seconds after the ego has come to a stop behind the queue.
            standing = np.nonzero(np.diff(res.ego_trace) < 0.3 * res.dt)[0]
            t_stop = float(standing[0]) * res.dt if len(standing) else cfg.duration_s / 3
            sig.set_green_start(node, app, t_stop + float(rng.uniform(2.5, 5.0)))
            continue
        front = res.ego_trace + ego.length / 2
        hit = np.nonzero(front >= z0)[0]
        t_arr = float(hit[0]) * res.dt if len(hit) else cfg.duration_s + 5.0
        sig.set_green_start(node, app, t_arr - float(rng.uniform(1.0, 3.0)))


def _copy(a: Agent) -> Agent:
    return replace(a, meta=dict(a.meta))


def ego_events(plan: EgoPlan, s_frames: np.ndarray, v_frames: np.ndarray) -> list[str]:
    """Manoeuvres the ego actually performed during the scene, in order.

    s_frames, v_frames: [T] ego arc length and speed per keyframe.
    """
    ego = plan.ego
    found: list[tuple[int, str]] = []
    for (s_ev, name, _node), (z0, z1, _n, _a) in zip(
        [e for e in ego.path.events if e[1] != "lane_change"], ego.path.zones
    ):
        mid = (z0 + z1) / 2
        if s_frames[0] < z1 and s_frames[-1] >= mid:
            found.append((int(np.argmax(s_frames >= mid)), name))
    if plan.lane_change is not None:
        a, b = plan.lane_change
        if s_frames[0] < b and s_frames[-1] >= (a + b) / 2:
            found.append((int(np.argmax(s_frames >= (a + b) / 2)), "lane_change"))
    # Stop-and-go: moving, then standing for at least 1 s, then moving again.
    moving = v_frames > 2.0
    stopped = v_frames < 0.3
    for t in range(1, len(v_frames)):
        if stopped[t] and moving[:t].any():
            run = t
            while run < len(v_frames) and stopped[run]:
                run += 1
            if run - t >= 2 and moving[run:].any():
                found.append((t, "stop_and_go"))
                break
    found.sort(key=lambda e: e[0])
    return [name for _, name in found]


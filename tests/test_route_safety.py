"""Acceptance of the named routes on held-out synthetic scenes, in the simulator's own truth: every
route of 20 scenes, driven 60 s at the default speed in the scene's simulation, never overlaps
another box and keeps the ego on the carriageway; a turn_left ends heading +90 deg unless the ego
still waits before the junction (measured on seed 5: 14 of 16 turned, 2 wait)."""

from __future__ import annotations

import math

import numpy as np

from pipelines.data.synthetic.config import SyntheticConfig
from pipelines.data.synthetic.routes import ROUTES, _driven, ego_centre, locate, route_path, scene_roads, simulated
from pipelines.occworld.forecast import route_speed

SEED = 5  # not a seed the demo world or its model has seen
STEPS = 120  # keyframes: 60 s, room for a red light before the turn


def _overlap(c1: np.ndarray, h1: np.ndarray, c2: np.ndarray, h2: np.ndarray) -> np.ndarray:
    """Separating-axis test of one box (centre c1 [2], yaw, half sizes h1 [2]: [x, y, yaw, hl, hw])
    against K boxes c2 [K, 5]: [K] True where they overlap."""
    x1, y1, yaw1, l1, w1 = c1
    u1 = np.array([[math.cos(yaw1), math.sin(yaw1)], [-math.sin(yaw1), math.cos(yaw1)]])  # [2 axes, 2]
    u2 = np.stack([np.stack([np.cos(c2[:, 2]), np.sin(c2[:, 2])], -1),
                   np.stack([-np.sin(c2[:, 2]), np.cos(c2[:, 2])], -1)], 1)  # [K, 2 axes, 2]
    d = c2[:, :2] - np.array([x1, y1])
    apart = np.zeros(len(c2), bool)
    for axes in (np.broadcast_to(u1, u2.shape), u2):
        for a in range(2):
            ax = axes[:, a]  # [K, 2]
            r1 = l1 * np.abs(ax @ u1[0]) + w1 * np.abs(ax @ u1[1])
            r2 = c2[:, 3] * np.abs((ax * u2[:, 0]).sum(1)) + c2[:, 4] * np.abs((ax * u2[:, 1]).sum(1))
            apart |= np.abs((d * ax).sum(1)) > r1 + r2
    return ~apart


def _on_carriageway(net, x: float, y: float) -> bool:
    return any(abs(y - yy) <= r.half_width for yy, r in zip(net.ys, net.hroads)) or \
        any(abs(x - xx) <= r.half_width for xx, r in zip(net.xs, net.vroads))


def test_twenty_held_out_scenes_every_route_collision_free_on_the_road_and_left_turns_end_at_90():
    cfg = SyntheticConfig()
    driven, turns, scenes = 0, [], 0
    for index in range(20):
        log = simulated(SEED, index, cfg, beyond=STEPS)
        net = scene_roads(SEED, index, cfg).net
        # the first frame from 3 on where the ego drives in a lane (not inside a junction or a bay)
        start = at = None
        for k in range(3, 15):
            x, y, yaw = log.ego_map_poses(logged=True)[k]
            centre = ego_centre(x, y, yaw)
            if _on_carriageway(net, *centre) and (at := locate(net, *centre, yaw)) is not None:
                start = k
                break
        if start is None:
            continue
        scenes += 1
        speed = route_speed(float(log.log.v[start, 0]))
        for move in ROUTES:
            if route_path(net, at, centre, yaw, move, speed * STEPS * 0.5 + 15.0, speed) is None:
                continue
            poses, sim = _driven(SEED, index, cfg, start, move, float(speed), STEPS)
            r, ego = sim.result, sim.agents[0]
            assert len(poses) == STEPS
            dims = np.array([[a.length / 2, a.width / 2] for a in sim.agents[1:]])
            on_road = []
            for k in range(start + 1, start + STEPS + 1):
                me = np.array([r.x[k, 0], r.y[k, 0], r.yaw[k, 0], ego.length / 2, ego.width / 2])
                others = np.concatenate([np.stack([r.x[k, 1:], r.y[k, 1:], r.yaw[k, 1:]], 1), dims], 1)
                near = np.hypot(others[:, 0] - me[0], others[:, 1] - me[1]) < 20.0
                hit = _overlap(me, None, others[near], None)
                assert not hit.any(), (index, move, k, [sim.agents[1 + i].tag for i in np.flatnonzero(near)[hit]])
                on_road.append(_on_carriageway(net, me[0], me[1]))
            assert np.mean(on_road) >= 0.99, (index, move, np.mean(on_road))
            driven += 1
            if move == "turn_left":
                turned = math.degrees(math.atan2(math.sin(poses[-1, 2] - yaw), math.cos(poses[-1, 2] - yaw)))
                zone = next(z for z in ego.path.zones if z[0] > 0.0)
                waiting = r.s[start + STEPS, 0] + ego.length / 2 <= zone[0] + 0.5 and abs(turned) < 20.0
                # the turn is made, or the ego still stands before the junction (its light, or a
                # jammed exit lane the simulator will not let it block)
                assert abs(turned - 90.0) < 20.0 or waiting, (index, turned)
                turns.append(abs(turned - 90.0) < 20.0)
    assert scenes == 20 and driven >= 60 and len(turns) >= 10, (scenes, driven, len(turns))
    assert np.mean(turns) >= 0.85, turns

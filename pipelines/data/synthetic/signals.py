"""Traffic lights: one fixed-time plan per intersection with exclusive phases.

Each approach (vehicles arriving with heading h) gets its own green, followed by an all-red
clearance; one extra phase lets pedestrians cross every arm while all vehicles wait. Because no
two approaches are ever green together, turning paths of different approaches never cross while
both may move: the simulator only has to keep vehicles of one approach apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .roads import RoadNetwork, back_of

CLEARANCE = 3.0  # s of all-red after every phase


@dataclass
class Signals:
    cycle: np.ndarray  # [K] s, K = number of nodes
    offset: np.ndarray  # [K] s: the plan's clock is (t + offset) mod cycle
    green_start: np.ndarray  # [K, 4] s in the cycle per approach heading (start == end: no approach)
    green_end: np.ndarray  # [K, 4]
    walk_start: np.ndarray  # [K]
    walk_end: np.ndarray  # [K]

    def clock(self, node: int, t: float) -> float:
        return float((t + self.offset[node]) % self.cycle[node])

    def is_green(self, node: int, approach: int, t: float) -> bool:
        c = self.clock(node, t)
        return bool(self.green_start[node, approach] <= c < self.green_end[node, approach])

    def time_to_green(self, node: int, approach: int, t: float) -> float:
        """Seconds until the approach turns green (0 while green)."""
        c = self.clock(node, t)
        gs, ge = self.green_start[node, approach], self.green_end[node, approach]
        if gs <= c < ge:
            return 0.0
        return float((gs - c) % self.cycle[node])

    def set_green_start(self, node: int, approach: int, t: float) -> None:
        """Shift the plan of `node` so that `approach` turns green at time t."""
        self.offset[node] = (self.green_start[node, approach] - t) % self.cycle[node]


def _walk_time(net: RoadNetwork, i: int, j: int) -> float:
    """Long enough for a slow pedestrian (1 m/s) to cross the widest arm, plus a margin."""
    width = 2 * max(net.vroads[i].half_width, net.hroads[j].half_width) + 0.6
    return width / 1.0 + 2.0


def _plan(arms: list[int], rng: np.random.Generator, walk_min: float, long_green: int | None = None):
    approaches = [back_of(a) for a in arms]  # arriving from arm a means heading back_of(a)
    order = [approaches[k] for k in rng.permutation(len(approaches))]
    phases: list[tuple[int, float]] = [(a, float(rng.uniform(8.0, 12.0))) for a in order]
    walk = max(float(rng.uniform(7.0, 10.0)), walk_min)
    phases.insert(int(rng.integers(len(phases) + 1)), (-1, walk))
    gs = np.zeros(4)
    ge = np.zeros(4)
    ws = we = 0.0
    t = 0.0
    for a, g in phases:
        if a == long_green:
            g = 15.0  # the ego's approach on its route: long enough to clear queues
        if a < 0:
            ws, we = t, t + g
        else:
            gs[a], ge[a] = t, t + g
        t += g + CLEARANCE
    return t, gs, ge, ws, we


def make_signals(net: RoadNetwork, rng: np.random.Generator) -> Signals:
    """A random plan and a random clock offset for every node."""
    nx, ny = net.shape
    k = nx * ny
    sig = Signals(np.zeros(k), np.zeros(k), np.zeros((k, 4)), np.zeros((k, 4)), np.zeros(k), np.zeros(k))
    for i in range(nx):
        for j in range(ny):
            n = net.node_id(i, j)
            cyc, gs, ge, ws, we = _plan(net.arms(i, j), rng, _walk_time(net, i, j))
            sig.cycle[n], sig.green_start[n], sig.green_end[n] = cyc, gs, ge
            sig.walk_start[n], sig.walk_end[n] = ws, we
            sig.offset[n] = rng.uniform(0.0, cyc)
    return sig


def replan(sig: Signals, net: RoadNetwork, i: int, j: int, approach: int, rng: np.random.Generator) -> None:
    """Give `approach` at node (i, j) a long green (the ego's route)."""
    n = net.node_id(i, j)
    cyc, gs, ge, ws, we = _plan(net.arms(i, j), rng, _walk_time(net, i, j), long_green=approach)
    sig.cycle[n], sig.green_start[n], sig.green_end[n] = cyc, gs, ge
    sig.walk_start[n], sig.walk_end[n] = ws, we

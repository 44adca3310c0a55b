"""The road network: a grid of straight roads with random spacing, lanes and T-junctions.

Everything here is in the *map frame*, where roads are axis-aligned (the scene's random global
rotation is applied only when poses and boxes are written out). Roads running north-south sit at
x = xs[i], roads running east-west at y = ys[j]; node (i, j) is their crossing. Headings are
indices 0..3 = east, north, west, south. Traffic keeps right: for heading d the lanes lie on the
right normal (d_y, -d_x), lane 0 innermost.

Distances along a heading through a node: a vehicle arriving with heading h stops at
`stop_dist(i, j, h)` metres before the node centre (behind the crosswalk, which continues the
crossing road's sidewalk) and leaves the intersection `stop_dist(i, j, h2)` metres after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import LANE_WIDTH, PARKING_WIDTH, SyntheticConfig

DIRS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # E, N, W, S
STOP_GAP = 3.0  # m between the crosswalk and the stop line (long vehicles swing wide when turning)


def right_normal(h: int) -> np.ndarray:
    """Unit vector to the right of heading h ([2])."""
    d = DIRS[h]
    return np.array([d[1], -d[0]])


def heading_yaw(h: int) -> float:
    return float(np.arctan2(DIRS[h][1], DIRS[h][0]))


def left_of(h: int) -> int:
    return (h + 1) % 4


def right_of(h: int) -> int:
    return (h + 3) % 4


def back_of(h: int) -> int:
    return (h + 2) % 4


@dataclass
class Road:
    """One straight road of the grid. Offsets are measured from its centreline."""

    pos: float  # x of a north-south road, y of an east-west road
    lanes: int  # per direction
    median: float  # width of the central median (0: none)
    parking: bool  # a parking strip on both sides
    sidewalk: float  # width of each sidewalk

    @property
    def half_width(self) -> float:
        """Half the kerb-to-kerb width."""
        return self.median / 2 + self.lanes * LANE_WIDTH + (PARKING_WIDTH if self.parking else 0.0)

    def lane_offset(self, lane: int) -> float:
        """Offset of lane `lane` (0 = innermost) to the right of its direction of travel."""
        return self.median / 2 + (lane + 0.5) * LANE_WIDTH

    @property
    def parking_offset(self) -> float:
        return self.median / 2 + self.lanes * LANE_WIDTH + PARKING_WIDTH / 2


@dataclass
class RoadNetwork:
    xs: np.ndarray  # [nx] x of the north-south roads, increasing
    ys: np.ndarray  # [ny] y of the east-west roads, increasing
    vroads: list[Road]  # [nx]
    hroads: list[Road]  # [ny]
    vseg: np.ndarray  # [nx, ny-1] bool: north-south road i exists between ys[j] and ys[j+1]
    hseg: np.ndarray  # [ny, nx-1] bool: east-west road j exists between xs[i] and xs[i+1]
    origin: tuple[int, int]  # the node at the map origin

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.xs), len(self.ys)

    def node_id(self, i: int, j: int) -> int:
        return i * len(self.ys) + j

    def node_pos(self, i: int, j: int) -> np.ndarray:
        return np.array([self.xs[i], self.ys[j]])

    def interior_nodes_near(self, lo: np.ndarray, hi: np.ndarray, margin: float):
        """Yield (i, j, position) of interior intersections within `margin` m of the box [lo, hi]."""
        nx, ny = self.shape
        for i in range(1, nx - 1):
            for j in range(1, ny - 1):
                p = self.node_pos(i, j)
                if np.any(p < lo - margin) or np.any(p > hi + margin):
                    continue
                yield i, j, p

    def arm(self, i: int, j: int, h: int) -> bool:
        """Whether a road leaves node (i, j) in direction h."""
        nx, ny = self.shape
        if h == 0:
            return i < nx - 1 and bool(self.hseg[j, i])
        if h == 2:
            return i > 0 and bool(self.hseg[j, i - 1])
        if h == 1:
            return j < ny - 1 and bool(self.vseg[i, j])
        return j > 0 and bool(self.vseg[i, j - 1])

    def arms(self, i: int, j: int) -> list[int]:
        return [h for h in range(4) if self.arm(i, j, h)]

    def road_along(self, i: int, j: int, h: int) -> Road:
        """The road travelled with heading h through node (i, j)."""
        return self.hroads[j] if h % 2 == 0 else self.vroads[i]

    def road_across(self, i: int, j: int, h: int) -> Road:
        """The road crossed when passing node (i, j) with heading h."""
        return self.vroads[i] if h % 2 == 0 else self.hroads[j]

    def stop_dist(self, i: int, j: int, h: int) -> float:
        """Distance from the node centre to the stop line of the approach with heading h."""
        across = self.road_across(i, j, h)
        return across.half_width + across.sidewalk + STOP_GAP

    def next_node(self, i: int, j: int, h: int) -> tuple[int, int]:
        d = DIRS[h].astype(int)
        return i + int(d[0]), j + int(d[1])

    def lane_point(self, i: int, j: int, h: int, lane: int, u: float) -> np.ndarray:
        """Point on lane `lane` of heading h, `u` metres past node (i, j) (negative: before)."""
        road = self.road_along(i, j, h)
        return self.node_pos(i, j) + DIRS[h] * u + right_normal(h) * road.lane_offset(lane)

    def segment_length(self, i: int, j: int, h: int) -> float:
        """Centre-to-centre length of the segment leaving node (i, j) with heading h."""
        i2, j2 = self.next_node(i, j, h)
        return float(np.abs(self.node_pos(i2, j2) - self.node_pos(i, j)).sum())

    def corner(self, i: int, j: int, qx: int, qy: int) -> np.ndarray:
        """Centre of the sidewalk corner square of node (i, j) in quadrant (qx, qy) (+-1 each)."""
        v, hr = self.vroads[i], self.hroads[j]
        return np.array(
            [self.xs[i] + qx * (v.half_width + v.sidewalk / 2), self.ys[j] + qy * (hr.half_width + hr.sidewalk / 2)]
        )


def _positions(rng: np.random.Generator, cfg: SyntheticConfig, extent: float) -> tuple[np.ndarray, int]:
    """Road positions covering [-extent, extent] with one road at 0; returns (positions, index of 0)."""
    up = [0.0]
    while up[-1] < extent:
        up.append(up[-1] + rng.uniform(cfg.block_min, cfg.block_max))
    down = [0.0]
    while down[-1] > -extent:
        down.append(down[-1] - rng.uniform(cfg.block_min, cfg.block_max))
    pos = np.array(sorted(down[1:]) + up)
    return pos, len(down) - 1


def _road(rng: np.random.Generator, cfg: SyntheticConfig, pos: float) -> Road:
    lanes = 2 if rng.random() < cfg.two_lane_share else 1
    median = float(rng.uniform(1.2, 3.2)) if lanes == 2 and rng.random() < cfg.median_share else 0.0
    parking = bool(rng.random() < cfg.parking_share)
    sidewalk = float(rng.uniform(3.2, 4.4))
    return Road(float(pos), lanes, median, parking, sidewalk)


def build_network(cfg: SyntheticConfig, rng: np.random.Generator, extent: float) -> RoadNetwork:
    """A random road grid covering [-extent, extent]^2 around a node at the origin.

    T-junctions come from removing segments; a node loses at most one arm, so every node keeps at
    least three and every vehicle always has somewhere to go.
    """
    xs, i0 = _positions(rng, cfg, extent)
    ys, j0 = _positions(rng, cfg, extent)
    vroads = [_road(rng, cfg, x) for x in xs]
    hroads = [_road(rng, cfg, y) for y in ys]
    nx, ny = len(xs), len(ys)
    vseg = np.ones((nx, ny - 1), bool)
    hseg = np.ones((ny, nx - 1), bool)
    lost = np.zeros((nx, ny), int)  # arms removed per node
    # Candidate segments in a fixed order, then a random subset in a random order.
    cands = [(0, i, j) for i in range(nx) for j in range(ny - 1)] + [(1, i, j) for j in range(ny) for i in range(nx - 1)]
    order = rng.permutation(len(cands))
    draws = rng.random(len(cands))
    for k in order:
        if draws[k] >= cfg.t_junction_share:
            continue
        kind, i, j = cands[k]
        a, b = ((i, j), (i, j + 1)) if kind == 0 else ((i, j), (i + 1, j))
        # Keep border nodes intact (they may be reached by long paths) and one arm lost per node.
        if min(a[0], b[0]) == 0 or min(a[1], b[1]) == 0 or max(a[0], b[0]) == nx - 1 or max(a[1], b[1]) == ny - 1:
            continue
        if lost[a] or lost[b]:
            continue
        lost[a] += 1
        lost[b] += 1
        if kind == 0:
            vseg[i, j] = False
        else:
            hseg[j, i] = False
    return RoadNetwork(xs, ys, vroads, hroads, vseg, hseg, (i0, j0))

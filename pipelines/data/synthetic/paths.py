"""Paths that agents follow: lines, arcs and lane shifts, sampled every DS metres.

A path is built from pieces (`PathBuilder`), then sampled into arrays of position, heading and a
speed limit that already brakes ahead of curves (so a vehicle slows *before* a turn). Paths also
carry their conflict zones: (s_enter, s_exit, node, approach) intervals of arc length where the
agent is inside an intersection (vehicles) or on a crosswalk (pedestrians, approach -1); the
simulator gates entry into those zones by the traffic lights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .roads import DIRS, STOP_GAP, RoadNetwork, back_of, left_of, right_normal, right_of

DS = 0.25  # m between path samples
A_LAT = 2.2  # m/s^2 lateral acceleration allowed in curves
B_PLAN = 1.8  # m/s^2 deceleration used to slow down ahead of curves
V_CAP = 40.0


@dataclass
class Path:
    x: np.ndarray  # [M] map-frame positions, one sample every DS metres
    y: np.ndarray  # [M]
    yaw: np.ndarray  # [M] heading, unwrapped (continuous)
    vlim: np.ndarray  # [M] speed limit (m/s) with braking ahead of curves
    zones: list[tuple[float, float, int, int]] = field(default_factory=list)
    # (s, kind, node) of route decisions: kind in straight / left_turn / right_turn / lane_change
    events: list[tuple[float, str, int]] = field(default_factory=list)

    @property
    def length(self) -> float:
        return (len(self.x) - 1) * DS

    def body_pose(self, s: float, half_base: float) -> tuple[float, float, float]:
        """Pose of a body whose axles sit on the path at s - half_base and s + half_base: centre
        between them, heading along the chord (so long vehicles cut inside curves as real ones
        do instead of sweeping their overhangs wide). half_base = 0 gives the path point."""
        if half_base <= 0.0:
            return self.pose(s)
        xf, yf, _ = self.pose(s + half_base)
        xr, yr, _ = self.pose(s - half_base)
        return (xf + xr) / 2, (yf + yr) / 2, float(np.arctan2(yf - yr, xf - xr))

    def pose(self, s: float) -> tuple[float, float, float]:
        """(x, y, yaw) at arc length s, linearly interpolated."""
        f = min(max(s / DS, 0.0), len(self.x) - 1.000001)
        k = int(f)
        t = f - k
        return (
            float(self.x[k] + (self.x[k + 1] - self.x[k]) * t),
            float(self.y[k] + (self.y[k + 1] - self.y[k]) * t),
            float(self.yaw[k] + (self.yaw[k + 1] - self.yaw[k]) * t),
        )


class PathBuilder:
    """Accumulates pieces starting at `start` with heading `yaw`; `build()` samples them."""

    def __init__(self, start: np.ndarray, yaw: float) -> None:
        self.pieces: list[tuple] = []
        self.length = 0.0
        self.pos = np.asarray(start, dtype=np.float64)
        self.yaw = float(yaw)
        self.zones: list[tuple[float, float, int, int]] = []
        self.events: list[tuple[float, str, int]] = []

    def line_to(self, p: np.ndarray) -> None:
        """Straight piece to p (its heading becomes the current heading)."""
        p = np.asarray(p, dtype=np.float64)
        d = p - self.pos
        n = float(np.hypot(*d))
        if n < 1e-9:
            return
        yaw = float(np.arctan2(d[1], d[0]))
        self.pieces.append(("line", self.pos.copy(), yaw, n))
        self.length += n
        self.pos = p
        self.yaw = yaw

    def arc(self, radius: float, sweep: float) -> None:
        """Circular arc of `radius`, turning by `sweep` radians (positive: left)."""
        sign = 1.0 if sweep > 0 else -1.0
        n = radius * abs(sweep)
        self.pieces.append(("arc", self.pos.copy(), self.yaw, n, radius, sign))
        centre = self.pos + sign * radius * np.array([-np.sin(self.yaw), np.cos(self.yaw)])
        a1 = self.yaw - sign * np.pi / 2 + sweep
        self.pos = centre + radius * np.array([np.cos(a1), np.sin(a1)])
        self.yaw = self.yaw + sweep
        self.length += n

    def shift(self, length: float, lateral: float) -> None:
        """Smooth lane shift: `length` metres forward, `lateral` metres to the left."""
        self.pieces.append(("shift", self.pos.copy(), self.yaw, length, lateral))
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        self.pos = self.pos + length * np.array([c, s]) + lateral * np.array([-s, c])
        self.length += length

    def turn_to(self, exit_point: np.ndarray, exit_yaw: float, inset: float = 0.0) -> None:
        """A 90-degree turn from the current pose onto the line through exit_point.

        Runs straight to the corner's tangent point, around an arc as wide as the geometry allows
        less `inset` (so the arc, where long vehicles swing wide, stays `inset` metres away from
        both ends), then straight to exit_point.
        """
        d_in = np.array([np.cos(self.yaw), np.sin(self.yaw)])
        d_out = np.array([np.cos(exit_yaw), np.sin(exit_yaw)])
        # Corner = intersection of the current line and the exit line.
        m = np.array([d_in, -d_out]).T
        t, _ = np.linalg.solve(m, np.asarray(exit_point) - self.pos)
        corner = self.pos + t * d_in
        a = float(t)
        b = float(np.dot(np.asarray(exit_point) - corner, d_out))
        r = max(min(a, b) - inset, 1.0)
        self.line_to(corner - d_in * r)
        sweep = float(np.arctan2(d_in[0] * d_out[1] - d_in[1] * d_out[0], float(d_in @ d_out)))
        self.arc(r, sweep)
        self.line_to(exit_point)

    def build(self) -> Path:
        n = int(np.floor(self.length / DS)) + 1
        s = np.arange(n) * DS
        x = np.empty(n)
        y = np.empty(n)
        yaw = np.empty(n)
        kappa = np.zeros(n)
        start = 0.0
        for k, piece in enumerate(self.pieces):
            kind, p0, yaw0, plen = piece[0], piece[1], piece[2], piece[3]
            last = k == len(self.pieces) - 1
            sel = (s >= start) & ((s <= start + plen) if last else (s < start + plen))
            u = np.minimum(s[sel] - start, plen)
            c0, s0 = np.cos(yaw0), np.sin(yaw0)
            if kind == "line":
                x[sel] = p0[0] + c0 * u
                y[sel] = p0[1] + s0 * u
                yaw[sel] = yaw0
            elif kind == "arc":
                radius, sign = piece[4], piece[5]
                cx, cy = p0[0] - sign * radius * s0, p0[1] + sign * radius * c0
                ang = yaw0 - sign * np.pi / 2 + sign * u / radius
                x[sel] = cx + radius * np.cos(ang)
                y[sel] = cy + radius * np.sin(ang)
                yaw[sel] = yaw0 + sign * u / radius
                kappa[sel] = 1.0 / radius
            else:  # shift: quintic smoothstep so heading and curvature start and end at zero
                lateral = piece[4]
                t = u / plen
                off = lateral * (10 * t**3 - 15 * t**4 + 6 * t**5)
                doff = lateral * (30 * t**2 - 60 * t**3 + 30 * t**4) / plen
                ddoff = lateral * (60 * t - 180 * t**2 + 120 * t**3) / plen**2
                x[sel] = p0[0] + c0 * u - s0 * off
                y[sel] = p0[1] + s0 * u + c0 * off
                yaw[sel] = yaw0 + np.arctan(doff)
                kappa[sel] = np.abs(ddoff)
            start += plen
        yaw = np.unwrap(yaw)
        vlim = np.where(kappa > 1e-4, np.sqrt(A_LAT / np.maximum(kappa, 1e-4)), V_CAP)
        vlim = np.minimum(vlim, V_CAP)
        # Braking-aware limit: v(s)^2 = min over s' >= s of vlim(s')^2 + 2 b (s' - s).
        w = vlim**2 + 2 * B_PLAN * s
        w = np.minimum.accumulate(w[::-1])[::-1]
        veff = np.sqrt(np.maximum(w - 2 * B_PLAN * s, 0.0))
        return Path(x, y, yaw, veff, list(self.zones), list(self.events))


# ---------------------------------------------------------------------------------------------
# Vehicle routes


def move_options(net: RoadNetwork, i: int, j: int, h: int, lane: int) -> list[str]:
    """Legal moves at node (i, j) arriving with heading h in `lane` (left turns from the inner
    lane, right turns from the outer lane, straight from any)."""
    lanes = net.road_along(i, j, h).lanes
    out = []
    if net.arm(i, j, h):
        out.append("straight")
    if net.arm(i, j, left_of(h)) and lane == 0:
        out.append("left_turn")
    if net.arm(i, j, right_of(h)) and lane == lanes - 1:
        out.append("right_turn")
    return out


def traverse(b: PathBuilder, net: RoadNetwork, i: int, j: int, h: int, lane: int, move: str) -> tuple[int, int, int, int]:
    """Drive from the stop line of node (i, j) through it; returns the next (i, j, h, lane).

    The builder must stand on the lane's stop line. Records the intersection as a zone.
    """
    s_enter = b.length
    if move == "straight":
        h2, lane2 = h, lane
    elif move == "left_turn":
        h2, lane2 = left_of(h), 0
    else:
        h2 = right_of(h)
        lane2 = net.road_along(i, j, h2).lanes - 1
    exit_point = net.lane_point(i, j, h2, lane2, net.stop_dist(i, j, h2))
    if h2 == h:
        b.line_to(exit_point)
    else:
        b.turn_to(exit_point, float(np.arctan2(DIRS[h2][1], DIRS[h2][0])), inset=STOP_GAP)
    b.zones.append((s_enter, b.length, net.node_id(i, j), h))
    b.events.append((s_enter, move, net.node_id(i, j)))
    i2, j2 = net.next_node(i, j, h2)
    return i2, j2, h2, lane2


def vehicle_route(
    net: RoadNetwork,
    i: int,
    j: int,
    h: int,
    lane: int,
    u: float,
    length: float,
    rng: np.random.Generator,
    back: float = 20.0,
    moves: list[str] | None = None,
    straight_only: bool = False,
) -> tuple[PathBuilder, float] | None:
    """Route of a vehicle whose centre is `u` m before node (i, j) on `lane` with heading h.

    The path starts `back` m behind the vehicle (room for a trailer); returns (builder, s of the
    vehicle centre), or None when `straight_only` and the road does not go straight far enough.
    `moves` forces the first decisions; later ones are random among the legal moves.
    """
    moves = list(moves or [])
    start = net.lane_point(i, j, h, lane, -u - back)
    b = PathBuilder(start, float(np.arctan2(DIRS[h][1], DIRS[h][0])))
    while b.length < length:
        b.line_to(net.lane_point(i, j, h, lane, -net.stop_dist(i, j, h)))
        if b.length >= length:
            break
        opts = move_options(net, i, j, h, lane)
        if moves:
            move = moves.pop(0)
            if move not in opts:
                move = "straight" if "straight" in opts else opts[0]
        elif straight_only:
            if "straight" not in opts:
                return None
            move = "straight"
        else:
            move = opts[int(rng.integers(len(opts)))]
        i, j, h, lane = traverse(b, net, i, j, h, lane, move)
    return b, back


# ---------------------------------------------------------------------------------------------
# Pedestrian routes: corner to corner along sidewalks, across crosswalks

WALK_OFFSET = 0.5  # pedestrians keep 0.5 m right of the sidewalk centre line


def _ped_move(net: RoadNetwork, i: int, j: int, qx: int, qy: int, h: int):
    """Move from corner (i, j, qx, qy) with heading h: (next corner, crosses an existing arm?) or None."""
    if h in (1, 3):  # north / south
        sy = 1 if h == 1 else -1
        if qy == sy:  # outward, along the north-south road on side qx
            if not net.arm(i, j, h):
                return None
            i2, j2 = net.next_node(i, j, h)
            return (i2, j2, qx, -sy), None
        # inward: across the east-west road's arm on side qx
        arm_h = 0 if qx == 1 else 2
        return (i, j, qx, sy), (arm_h if net.arm(i, j, arm_h) else None)
    sx = 1 if h == 0 else -1
    if qx == sx:
        if not net.arm(i, j, h):
            return None
        i2, j2 = net.next_node(i, j, h)
        return (i2, j2, -sx, qy), None
    arm_h = 1 if qy == 1 else 3
    return (i, j, sx, qy), (arm_h if net.arm(i, j, arm_h) else None)


def pedestrian_route(
    net: RoadNetwork,
    start: np.ndarray,
    h: int,
    corner: tuple[int, int, int, int],
    length: float,
    rng: np.random.Generator,
) -> PathBuilder:
    """Walk from `start` (on a sidewalk centre line, heading h) to `corner`, then on at random.

    The polyline through corner centres is offset WALK_OFFSET to the right of travel so that
    opposite walkers pass each other. Crosswalks over existing arms become zones (approach -1).
    """
    pts = [np.asarray(start, dtype=np.float64)]
    heads = [h]
    crossings: list[tuple[int, int, int, int]] = []  # (segment index, node i, node j, arm heading)
    cur = corner
    total = float(np.abs(net.corner(*cur) - pts[0]).sum())
    pts.append(net.corner(*cur))
    while total < length:
        opts = []
        for h2 in (h, left_of(h), right_of(h)):
            mv = _ped_move(net, *cur, h2)
            if mv is not None:
                opts.append((h2, mv))
        if not opts:  # dead corner (should not happen): turn back
            h2 = back_of(h)
            mv = _ped_move(net, *cur, h2)
            if mv is None:
                break
            opts = [(h2, mv)]
        # Prefer walking on: straight half the time.
        weights = np.array([2.0 if o[0] == h else 1.0 for o in opts])
        h2, (nxt, arm_h) = opts[int(rng.choice(len(opts), p=weights / weights.sum()))]
        if arm_h is not None:
            crossings.append((len(pts) - 1, cur[0], cur[1], arm_h))
        heads.append(h2)
        h = h2
        cur = nxt
        p = net.corner(*cur)
        total += float(np.abs(p - pts[-1]).sum())
        pts.append(p)
    # Offset the polyline to the right of travel.
    off = []
    for k, p in enumerate(pts):
        if k == 0:
            off.append(p + WALK_OFFSET * right_normal(heads[0]))
            continue
        h_in = heads[k - 1] if k - 1 < len(heads) else heads[-1]
        h_out = heads[k] if k < len(heads) else h_in
        rn = right_normal(h_in) + (right_normal(h_out) if h_out != h_in else 0.0)
        off.append(p + WALK_OFFSET * rn)
    b = PathBuilder(off[0], float(np.arctan2(DIRS[heads[0]][1], DIRS[heads[0]][0])))
    seg_start = []
    for k in range(1, len(off)):
        seg_start.append(b.length)
        b.line_to(off[k])
    for seg, i, j, arm_h in crossings:
        # Segment seg runs from corner pts[seg] across the arm to pts[seg+1]; kerbs at the
        # crossed road's edges, projected on the walking direction.
        d = DIRS[heads[seg]]
        road = net.road_along(i, j, arm_h)
        centre = net.node_pos(i, j)
        c_along = float(np.dot(centre, d))
        v0 = float(np.dot(off[seg], d))
        near = c_along - road.half_width
        far = c_along + road.half_width
        s0 = seg_start[seg] + (near - v0) - 0.3
        s1 = seg_start[seg] + (far - v0) + 0.3
        b.zones.append((s0, s1, net.node_id(i, j), -1))
    return b

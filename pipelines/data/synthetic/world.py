"""The static world between the roads: blocks, street furniture and static object instances.

Produces *primitives* (axis-aligned boxes of a label, trees, poles with arms, terrain mounds) in
the map frame for `voxelise.py` to rasterise, and static *instances* (parked vehicles, traffic
cones, barriers, construction vehicles, bins and debris) as agents for the simulator, which
treats them as fixed obstacles.

Every block draws from its own random stream (keyed by the scene and the block's grid index),
so a block looks the same whichever part of it a scene happens to see. Objects are kept off the
lanes, the parking strips' traffic side and the pedestrians' walking lines, so no moving agent
ever has to pass through them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..occ3d import CLASS_INDEX
from . import sim
from .config import SyntheticConfig
from .roads import DIRS, RoadNetwork, right_normal
from .traffic import Agent

C = CLASS_INDEX
TOP_K = 15  # highest voxel layer (centre z = 5.2 m)


def k_of(z: float) -> int:
    """Voxel layer whose cell contains height z (m)."""
    return int(np.clip(np.floor((z + 1.0) / 0.4), 0, TOP_K))


BLOCK_KINDS = ("buildings", "houses", "park", "parking", "plaza")
_KIND_WEIGHTS = np.array([0.38, 0.2, 0.16, 0.12, 0.14])  # the mean mix over many scenes
_KIND_CONCENTRATION = 6.0  # Dirichlet concentration: lower, the more scenes differ in their mix
WORK_ZONE_SHARE = 0.25  # share of scenes with a fenced work zone beside the ego's start
_DISTRICT_SALT = 9  # the district's stream (blocks use salts 1-4)
POLE_BACK = 3.5  # m from the crossing road's kerb line back to a traffic-light pole


@dataclass(frozen=True)
class District:
    """What one scene's city is like, drawn per scene from a stream of its own (so the road grid,
    the ego and the traffic draw what they drew before): the mix of block kinds, how built-up
    the blocks are, the street furniture, how busy the streets are, and whether a work zone
    stands beside the ego's start. Without it every scene was the same city with the same work
    zone 15 m from the ego."""

    kind_probs: tuple[float, ...]  # over BLOCK_KINDS
    tall_share: float  # share of buildings taller than the grid (else 3-5 m)
    gap_share: float  # share of building lots with a gap before them
    setback_max: float  # m from the block edge to a building front, drawn in [0.6, max]
    furniture_gap: tuple[float, float]  # m between street lights / tree pits, drawn in [lo, hi]
    light_share: float  # share of those that are street lights (else tree pits)
    cone_share: float  # share of parking strips with groups of cones
    parked_scale: float  # multiplies SyntheticConfig.parked_share
    traffic_scale: float  # multiplies SyntheticConfig.traffic_density
    pedestrian_scale: float  # multiplies SyntheticConfig.pedestrian_density
    work_zone: bool


def draw_district(entropy: list[int]) -> District:
    """The district of the scene with random entropy [seed, index]; deterministic."""
    rng = _block_rng(entropy, 0, 0, _DISTRICT_SALT)
    probs = rng.dirichlet(_KIND_CONCENTRATION * _KIND_WEIGHTS)
    lo = float(rng.uniform(10.0, 20.0))
    return District(
        kind_probs=tuple(float(p) for p in probs),
        tall_share=float(rng.uniform(0.3, 0.95)),
        gap_share=float(rng.uniform(0.1, 0.7)),
        setback_max=float(rng.uniform(2.0, 6.0)),
        furniture_gap=(lo, lo + float(rng.uniform(6.0, 20.0))),
        light_share=float(rng.uniform(0.25, 0.85)),
        cone_share=float(rng.uniform(0.0, 0.5)),
        parked_scale=float(rng.uniform(0.5, 1.5)),
        traffic_scale=float(rng.uniform(0.5, 1.6)),
        pedestrian_scale=float(rng.uniform(0.4, 1.6)),
        work_zone=bool(rng.random() < WORK_ZONE_SHARE),
    )


@dataclass
class World:
    # ("rect", x0, x1, y0, y1, k0, k1, label, only_free): fill cells with centres in the box
    # ("disk", cx, cy, rx, ry, k0, k1, label): axis-aligned elliptic prism
    # ("tree", x, y, trunk_top_k, zc, radius)
    # ("pole", x, y, top_k, arm_dx, arm_dy, arm_len)
    prims: list[tuple] = field(default_factory=list)
    statics: list[Agent] = field(default_factory=list)
    blocks: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # (kind, x0, x1, y0, y1)
    district: District | None = None


def _static(cls: str, x: float, y: float, yaw: float, l: float, w: float, h: float, tag: str = "") -> Agent:
    return Agent(C[cls], sim.STATIC, l, w, h, pose=(float(x), float(y), float(yaw)), tag=tag or cls)


def _block_rng(entropy: list[int], i: int, j: int, salt: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(salt, i, j)))


def _trees(w: World, rng: np.random.Generator, x0: float, x1: float, y0: float, y1: float, count: int) -> None:
    for _ in range(count):
        r = float(rng.uniform(1.2, 2.6))
        x = float(rng.uniform(x0 + r * 0.5, x1 - r * 0.5)) if x1 - x0 > r else (x0 + x1) / 2
        y = float(rng.uniform(y0 + r * 0.5, y1 - r * 0.5)) if y1 - y0 > r else (y0 + y1) / 2
        zc = float(rng.uniform(2.8, 4.4))
        w.prims.append(("tree", x, y, k_of(zc - r * 0.6), zc, r))


def _hedge(w: World, x0, x1, y0, y1, rng) -> None:
    top = k_of(float(rng.uniform(0.9, 1.5)))
    w.prims.append(("rect", x0, x1, y0, y1, 3, top, C["vegetation"], True))


def _buildings(w: World, rng, x0, x1, y0, y1, d: District) -> None:
    """Lots of buildings along the block's four edges, courtyard of terrain and trees inside."""
    depth_max = max(6.0, min(22.0, (min(x1 - x0, y1 - y0)) / 2 - 3.0))
    for side in range(4):
        horizontal = side in (0, 2)  # edge along x (south / north)
        a0, a1 = (x0, x1) if horizontal else (y0, y1)
        t = a0
        while t < a1 - 4:
            width = float(rng.uniform(10, 28))
            gap = float(rng.uniform(0, 5)) if rng.random() < d.gap_share else 0.0
            setback = float(rng.uniform(0.6, d.setback_max))
            depth = float(rng.uniform(6.0, depth_max))
            b0, b1 = t + gap, min(t + gap + width, a1)
            top = TOP_K if rng.random() < d.tall_share else k_of(float(rng.uniform(3.0, 5.0)))
            if b1 - b0 > 3:
                if side == 0:
                    rect = (b0, b1, y0 + setback, y0 + setback + depth)
                elif side == 2:
                    rect = (b0, b1, y1 - setback - depth, y1 - setback)
                elif side == 1:
                    rect = (x1 - setback - depth, x1 - setback, b0, b1)
                else:
                    rect = (x0 + setback, x0 + setback + depth, b0, b1)
                w.prims.append(("rect", *rect, 2, top, C["manmade"], False))
                # Front strip: a hedge, or a bin standing in it.
                if setback > 1.6 and rng.random() < 0.35:
                    if side == 0:
                        _hedge(w, b0, b1, y0 + 0.3, y0 + 1.0, rng)
                    elif side == 2:
                        _hedge(w, b0, b1, y1 - 1.0, y1 - 0.3, rng)
                    elif side == 1:
                        _hedge(w, x1 - 1.0, x1 - 0.3, b0, b1, rng)
                    else:
                        _hedge(w, x0 + 0.3, x0 + 1.0, b0, b1, rng)
                elif setback > 1.6 and rng.random() < 0.4 and a0 + depth_max + 6 < (b0 + b1) / 2 < a1 - depth_max - 6:
                    # (away from the corners, where the buildings of the next edge stand)
                    along = (b0 + b1) / 2
                    off = setback / 2
                    bx, by = {0: (along, y0 + off), 2: (along, y1 - off), 1: (x1 - off, along), 3: (x0 + off, along)}[side]
                    l_, w_ = float(rng.uniform(0.6, 1.1)), float(rng.uniform(0.6, 0.8))
                    w.statics.append(_static("others", bx, by, 0.0 if horizontal else np.pi / 2, l_, w_, float(rng.uniform(1.0, 1.3)), "bin"))
            t = b1 + float(rng.uniform(0, 3))
    ix0, ix1, iy0, iy1 = x0 + depth_max + 4, x1 - depth_max - 4, y0 + depth_max + 4, y1 - depth_max - 4
    if ix1 - ix0 > 4 and iy1 - iy0 > 4:
        _trees(w, rng, ix0, ix1, iy0, iy1, int(rng.integers(1, 5)))


def _edge_frame(side: int, x0: float, x1: float, y0: float, y1: float):
    """(u along block edge `side` (0 south, 1 east, 2 north, 3 west), v into the block) -> a
    map-frame rect maker and the yaw of the v axis."""
    def rect(u0: float, u1: float, v0: float, v1: float) -> tuple[float, float, float, float]:
        if side == 0:
            return u0, u1, y0 + v0, y0 + v1
        if side == 2:
            return u0, u1, y1 - v1, y1 - v0
        if side == 1:
            return x1 - v1, x1 - v0, u0, u1
        return x0 + v0, x0 + v1, u0, u1

    return rect, (np.pi / 2, np.pi, -np.pi / 2, 0.0)[side]


def _houses(w: World, rng, x0, x1, y0, y1, d: District) -> None:
    """Detached houses on lots along the block's edges: a low house behind a front garden (a hedge
    or a tree), a driveway of driveable surface from the sidewalk, a parked car on some, a tree
    in some back gardens."""
    lot_depth = max(12.0, min(28.0, min(x1 - x0, y1 - y0) / 2 - 1.0))
    for side in range(4):
        rect, v_yaw = _edge_frame(side, x0, x1, y0, y1)
        a0, a1 = (x0, x1) if side in (0, 2) else (y0 + lot_depth, y1 - lot_depth)  # corners: south/north lots
        t = a0 + float(rng.uniform(0.0, 3.0))
        while t + 11.0 < a1:
            b0, b1 = t, min(t + float(rng.uniform(12.0, 20.0)), a1)
            setback = float(rng.uniform(4.0, 7.0))
            depth = float(rng.uniform(7.0, max(7.0, min(11.0, lot_depth - setback - 1.0))))
            width = min(b1 - b0 - 4.5, float(rng.uniform(7.0, 11.0)))
            drive_first = rng.random() < 0.5  # the driveway on the lot's low-u or high-u side
            du = b0 + 0.5 if drive_first else b1 - 3.5
            hu = b0 + 4.0 if drive_first else b1 - 4.0 - width
            w.prims.append(("rect", *rect(hu, hu + width, setback, setback + depth), 2, k_of(float(rng.uniform(3.2, 4.6))),
                            C["manmade"], False))
            w.prims.append(("rect", *rect(du, du + 3.0, 0.0, setback + 5.0), 2, 2, C["driveable_surface"], False))
            if rng.random() < 0.45 * d.parked_scale:
                l_ = float(rng.uniform(4.0, 4.8))
                bx0, bx1, by0, by1 = rect(du + 1.5, du + 1.5, 0.8 + l_ / 2, 0.8 + l_ / 2)
                w.statics.append(_static("car", bx0, by0, v_yaw, l_, float(rng.uniform(1.75, 1.95)),
                                         float(rng.uniform(1.45, 1.8)), "parked"))
            if rng.random() < 0.5:
                _hedge(w, *rect(hu, hu + width, 0.3, 1.0), rng)
            elif setback > 5.0:
                cx0, _, cy0, _ = rect(hu + width / 2, hu + width / 2, setback / 2, setback / 2)
                w.prims.append(("tree", cx0, cy0, k_of(2.4), float(rng.uniform(3.2, 4.0)), float(rng.uniform(1.0, 1.6))))
            if setback + depth + 5.0 < lot_depth and rng.random() < 0.6:
                cx0, _, cy0, _ = rect(hu + width / 2, hu + width / 2, setback + depth + 3.5, setback + depth + 3.5)
                w.prims.append(("tree", cx0, cy0, k_of(2.6), float(rng.uniform(3.4, 4.4)), float(rng.uniform(1.3, 2.2))))
            t = b1


def _park(w: World, rng, x0, x1, y0, y1) -> None:
    area = (x1 - x0) * (y1 - y0)
    for _ in range(int(rng.integers(2, 6))):  # gentle mounds of terrain one or two layers high
        rx, ry = float(rng.uniform(4, 12)), float(rng.uniform(4, 12))
        cx, cy = float(rng.uniform(x0 + rx, max(x0 + rx + 0.1, x1 - rx))), float(rng.uniform(y0 + ry, max(y0 + ry + 0.1, y1 - ry)))
        w.prims.append(("disk", cx, cy, rx, ry, 3, 3, C["terrain"]))
        if rng.random() < 0.5:
            w.prims.append(("disk", cx, cy, rx * 0.5, ry * 0.5, 4, 4, C["terrain"]))
    # A footpath across the park (sidewalk class), with benches and bins (others) along it.
    if rng.random() < 0.5:
        py = float(rng.uniform(y0 + 8, max(y0 + 8.1, y1 - 8)))
        w.prims.append(("rect", x0, x1, py - 1.2, py + 1.2, 2, 3, C["sidewalk"], False))
        w.prims.append(("rect", x0, x1, py - 1.2, py + 1.2, 3, 3, 17, False))
        for bx in np.arange(x0 + 6, x1 - 6, float(rng.uniform(15, 30))):
            w.statics.append(_static("others", float(bx), py + 1.7, 0.0, float(rng.uniform(1.4, 1.8)), 0.6, 0.9, "bench"))
    else:
        px = float(rng.uniform(x0 + 8, max(x0 + 8.1, x1 - 8)))
        w.prims.append(("rect", px - 1.2, px + 1.2, y0, y1, 2, 3, C["sidewalk"], False))
        w.prims.append(("rect", px - 1.2, px + 1.2, y0, y1, 3, 3, 17, False))
        for by in np.arange(y0 + 6, y1 - 6, float(rng.uniform(15, 30))):
            w.statics.append(_static("others", px + 1.7, float(by), np.pi / 2, float(rng.uniform(1.4, 1.8)), 0.6, 0.9, "bench"))
    _trees(w, rng, x0 + 2, x1 - 2, y0 + 2, y1 - 2, int(area / float(rng.uniform(150, 400))))
    # Hedges along two edges.
    _hedge(w, x0 + 0.5, x1 - 0.5, y0 + 0.4, y0 + 1.2, rng)
    _hedge(w, x0 + 0.4, x0 + 1.2, y0 + 0.5, y1 - 0.5, rng)


def _parking(w: World, rng, x0, x1, y0, y1) -> None:
    """A parking lot: driveable surface, rows of bays along x, parked cars, light poles."""
    w.prims.append(("rect", x0 + 1.5, x1 - 1.5, y0 + 1.5, y1 - 1.5, 2, 2, C["driveable_surface"], False))
    w.prims.append(("rect", x0 + 0.3, x1 - 0.3, y0 + 0.3, y0 + 1.1, 3, 4, C["vegetation"], False))
    w.prims.append(("rect", x0 + 0.3, x1 - 0.3, y1 - 1.1, y1 - 0.3, 3, 4, C["vegetation"], False))
    row = y0 + 3.0
    while row + 5.2 < y1 - 3.0:
        for bx in np.arange(x0 + 3.0, x1 - 5.5, 2.7):
            if rng.random() < 0.65:
                l_, wd = float(rng.uniform(4.0, 4.8)), float(rng.uniform(1.75, 1.95))
                yaw = np.pi / 2 if rng.random() < 0.5 else -np.pi / 2
                w.statics.append(_static("car", float(bx) + 1.35, row + 2.6, yaw, l_, wd, float(rng.uniform(1.45, 1.8)), "parked"))
        row += 5.2 + 6.5  # bays, then an aisle
    for px in np.arange(x0 + 6, x1 - 6, 25.0):
        w.prims.append(("pole", float(px), y0 + 2.0, 13, 0.0, 1.0, 1.2))


def _plaza(w: World, rng, x0, x1, y0, y1) -> None:
    w.prims.append(("rect", x0, x1, y0, y1, 2, 2, C["other_flat"], False))
    # A kiosk and tree pits, bins between them.
    kx, ky = float(rng.uniform(x0 + 6, max(x0 + 6.1, x1 - 9))), float(rng.uniform(y0 + 6, max(y0 + 6.1, y1 - 9)))
    w.prims.append(("rect", kx, kx + 3.0, ky, ky + 3.0, 2, k_of(3.0), C["manmade"], False))
    for tx in np.arange(x0 + 4, x1 - 4, float(rng.uniform(9, 14))):
        for ty in (y0 + 4, y1 - 4):
            if abs(tx - kx - 1.5) < 6 and abs(ty - ky - 1.5) < 6:
                continue
            w.prims.append(("tree", float(tx), float(ty), k_of(2.4), float(rng.uniform(3.4, 4.2)), float(rng.uniform(1.3, 2.0))))
            if rng.random() < 0.5:
                w.statics.append(_static("others", float(tx) + 2.5, float(ty), 0.0, 0.7, 0.7, 1.1, "bin"))
    for px in np.arange(x0 + 3, x1 - 3, 18.0):
        w.prims.append(("pole", float(px), (y0 + y1) / 2, 12, 0.0, 0.0, 0.0))


def _construction(w: World, rng, x0, x1, y0, y1, side: str = "y0") -> None:
    """A fenced work zone on the block edge `side` (facing the ego's road): barriers around it
    with a gate, a construction vehicle, a parked trailer, a row of cones, debris (others), a
    heap of excavated soil; gravel (other_flat) on the ground. The rest of the block is a vacant
    lot with a few trees."""
    horizontal = side in ("y0", "y1")  # the zone's long side runs along x
    edge_len = (x1 - x0) if horizontal else (y1 - y0)
    depth_max = (y1 - y0) if horizontal else (x1 - x0)
    length = min(edge_len - 2.0, float(rng.uniform(30.0, 45.0)))
    depth = min(depth_max - 2.0, float(rng.uniform(15.0, 22.0)))
    if length < 14.0 or depth < 10.0:
        return
    a = float(rng.uniform(0.0, edge_len - length))

    def world(u: float, v: float) -> tuple[float, float]:
        """Zone frame (u along the edge, v into the block) -> map frame."""
        if side == "y0":
            return x0 + a + u, y0 + v
        if side == "y1":
            return x0 + a + u, y1 - v
        if side == "x0":
            return x0 + v, y0 + a + u
        return x1 - v, y0 + a + u

    turn = 0.0 if horizontal else np.pi / 2  # map yaw of the zone's u axis

    def put(cls, u, v, yaw, l_, w_, h_, tag=""):
        x, y = world(u, v)
        w.statics.append(_static(cls, x, y, yaw + turn, l_, w_, h_, tag))

    (ax, ay), (bx, by) = world(0.0, 0.0), world(length, depth)
    w.prims.append(("rect", min(ax, bx), max(ax, bx), min(ay, by), max(ay, by), 2, 2, C["other_flat"], False))
    gate = float(rng.uniform(6.0, length - 12.0))
    for v_line in (1.0, depth - 1.0):  # fences along the edge (with a gate on the road side)
        u = 1.5
        while u + 2.2 < length - 1.5:
            if not (v_line == 1.0 and gate <= u <= gate + 6.0):
                put("barrier", u + 1.1, v_line, 0.0, 2.1, 0.6, float(rng.uniform(0.95, 1.1)))
            u += 2.35
    for u_line in (1.0, length - 1.0):  # and across it
        v = 2.5
        while v + 2.2 < depth - 2.5:
            put("barrier", u_line, v + 1.1, np.pi / 2, 2.1, 0.6, float(rng.uniform(0.95, 1.1)))
            v += 2.35
    put("construction_vehicle", length * float(rng.uniform(0.3, 0.4)), depth / 2, float(rng.uniform(-0.5, 0.5)),
        float(rng.uniform(6.0, 8.0)), float(rng.uniform(2.5, 3.0)), float(rng.uniform(3.0, 3.8)))
    put("trailer", length * 0.72, depth / 2 + float(rng.uniform(-1.5, 1.5)), 0.0, float(rng.uniform(7.0, 9.0)), 2.5,
        float(rng.uniform(1.3, 3.6)), "parked_trailer")
    for k in range(int(rng.integers(4, 8))):  # cones lining the way in from the gate
        put("traffic_cone", gate - 1.0, 2.6 + 1.4 * k, 0.0, 0.45, 0.45, float(rng.uniform(0.7, 0.9)))
    put("others", length - 4.5, depth - 4.5, 0.0, float(rng.uniform(2.0, 3.0)), float(rng.uniform(1.5, 2.2)),
        float(rng.uniform(0.8, 1.2)), "debris")
    cx, cy = world(length - 5.0, 5.0)
    w.prims.append(("disk", cx, cy, 2.5, 2.5, 3, 4, C["terrain"]))  # heap of excavated soil
    # The vacant rest of the block.
    if horizontal:
        ry0, ry1 = (y0 + depth + 3, y1) if side == "y0" else (y0, y1 - depth - 3)
        if ry1 - ry0 > 6:
            _trees(w, rng, x0 + 2, x1 - 2, ry0, ry1 - 2, int((x1 - x0) * (ry1 - ry0) / 400))
    else:
        rx0, rx1 = (x0 + depth + 3, x1) if side == "x0" else (x0, x1 - depth - 3)
        if rx1 - rx0 > 6:
            _trees(w, rng, rx0, rx1 - 2, y0 + 2, y1 - 2, int((rx1 - rx0) * (y1 - y0) / 400))


def build_world(
    net: RoadNetwork,
    cfg: SyntheticConfig,
    entropy: list[int],
    lo: np.ndarray,
    hi: np.ndarray,
    work_zone: tuple[int, int, str] | None = None,
) -> World:
    """Blocks, green strips, street furniture and parked vehicles inside [lo, hi] (map frame).

    `work_zone` = (i, j, edge): where the scene's work zone stands if its district has one, e.g.
    (3, 4, "x0") for a fenced site on the west edge of block (3, 4).
    """
    d = draw_district(entropy)
    forced = {work_zone[:2]: f"construction_{work_zone[2]}"} if work_zone is not None and d.work_zone else {}
    w = World(district=d)
    nx, ny = net.shape
    vr, hr = net.vroads, net.hroads
    xs, ys = net.xs, net.ys
    probs = np.array(d.kind_probs)
    for i in range(nx - 1):
        for j in range(ny - 1):
            x0 = xs[i] + vr[i].half_width + vr[i].sidewalk
            x1 = xs[i + 1] - vr[i + 1].half_width - vr[i + 1].sidewalk
            y0 = ys[j] + hr[j].half_width + hr[j].sidewalk
            y1 = ys[j + 1] - hr[j + 1].half_width - hr[j + 1].sidewalk
            if x1 < lo[0] or x0 > hi[0] or y1 < lo[1] or y0 > hi[1]:
                continue
            rng = _block_rng(entropy, i, j, 1)
            kind = forced.get((i, j)) or BLOCK_KINDS[int(rng.choice(len(BLOCK_KINDS), p=probs))]
            w.blocks.append((kind, x0, x1, y0, y1))
            if kind.startswith("construction"):  # "construction_<side>": the edge facing the road
                _construction(w, rng, x0, x1, y0, y1, kind.split("_")[1])
            elif kind in ("buildings", "houses"):
                (_buildings if kind == "buildings" else _houses)(w, rng, x0, x1, y0, y1, d)
            else:
                {"park": _park, "parking": _parking, "plaza": _plaza}[kind](w, rng, x0, x1, y0, y1)
    # Green strips where a road segment was removed (between two blocks).
    for i in range(nx):
        for j in range(ny - 1):
            if not net.vseg[i, j]:
                x0, x1 = xs[i] - vr[i].half_width - vr[i].sidewalk, xs[i] + vr[i].half_width + vr[i].sidewalk
                y0, y1 = ys[j] + hr[j].half_width + hr[j].sidewalk, ys[j + 1] - hr[j + 1].half_width - hr[j + 1].sidewalk
                if not (x1 < lo[0] or x0 > hi[0] or y1 < lo[1] or y0 > hi[1]):
                    _trees(w, _block_rng(entropy, i, j, 2), x0, x1, y0, y1, int((y1 - y0) / 12))
    for j in range(ny):
        for i in range(nx - 1):
            if not net.hseg[j, i]:
                x0, x1 = xs[i] + vr[i].half_width + vr[i].sidewalk, xs[i + 1] - vr[i + 1].half_width - vr[i + 1].sidewalk
                y0, y1 = ys[j] - hr[j].half_width - hr[j].sidewalk, ys[j] + hr[j].half_width + hr[j].sidewalk
                if not (x1 < lo[0] or x0 > hi[0] or y1 < lo[1] or y0 > hi[1]):
                    _trees(w, _block_rng(entropy, i, j, 3), x0, x1, y0, y1, int((x1 - x0) / 12))
    _street_furniture(w, net, cfg, entropy, lo, hi, d)
    return w


def _street_furniture(w: World, net: RoadNetwork, cfg: SyntheticConfig, entropy: list[int], lo, hi, d: District) -> None:
    """Street lights and tree pits on the kerb side of sidewalks, traffic-light poles with arms
    over the lanes at every approach, and parked vehicles (and cones) on parking strips."""
    for i, j, p in net.interior_nodes_near(lo, hi, 140.0):
        rng = _block_rng(entropy, i, j, 4)
        for h in range(4):
            # Traffic light for the approach with heading h: pole on the right-hand sidewalk
            # POLE_BACK m short of the kerb corner (right-turning vehicles sweep over the square
            # corner itself), arm over its lanes.
            back = (h + 2) % 4
            if not net.arm(i, j, back):
                continue
            road = net.road_along(i, j, h)
            across = net.road_across(i, j, h)
            rn = right_normal(h)
            base = p - DIRS[h] * (across.half_width + POLE_BACK) + rn * (road.half_width + 0.45)
            arm = -rn
            w.prims.append(("pole", float(base[0]), float(base[1]), 14, float(arm[0]), float(arm[1]), road.lanes * 3.5 + 1.0))
            # Along the segment arriving with heading h: street lights and tree pits on the
            # right-hand sidewalk, parked vehicles on the parking strip.
            ip, jp = net.next_node(i, j, back)
            seg = net.segment_length(i, j, back)
            d0 = net.stop_dist(i, j, h) + 2.0
            d1 = seg - net.stop_dist(ip, jp, h) - 2.0
            u = d0 + float(rng.uniform(2, 10))
            while u < d1:
                q = p - DIRS[h] * u + rn * (road.half_width + 0.45)
                if rng.random() < d.light_share:
                    w.prims.append(("pole", float(q[0]), float(q[1]), 13, float(-rn[0]), float(-rn[1]), 1.6))
                elif road.sidewalk > 3.5:
                    w.prims.append(("tree", float(q[0]), float(q[1]), k_of(2.6), float(rng.uniform(3.6, 4.4)), float(rng.uniform(1.1, 1.5))))
                u += float(rng.uniform(*d.furniture_gap))
            if road.parking:
                u = d0 + 1.0
                cones = rng.random() < d.cone_share
                yaw = float(np.arctan2(DIRS[h][1], DIRS[h][0]))
                while u + 5.0 < d1:
                    if cones and rng.random() < 0.5:
                        for k in range(4):
                            c = p - DIRS[h] * (u + 0.5 + 1.3 * k) + rn * (road.parking_offset - 0.5)
                            w.statics.append(_static("traffic_cone", float(c[0]), float(c[1]), 0.0, 0.45, 0.45, 0.8))
                        u += 5.6
                        continue
                    r = rng.random()
                    if r < 0.1:
                        l_, wd, hh, tag = float(rng.uniform(5.5, 6.5)), float(rng.uniform(2.0, 2.1)), float(rng.uniform(2.3, 2.8)), "truck"
                    elif r < 0.16:
                        l_, wd, hh, tag = float(rng.uniform(1.9, 2.2)), 0.8, 1.3, "motorcycle"
                    else:
                        l_, wd, hh, tag = float(rng.uniform(4.0, 4.8)), float(rng.uniform(1.75, 1.95)), float(rng.uniform(1.45, 1.8)), "car"
                    if u + l_ + 0.5 > d1:
                        break
                    if rng.random() < min(1.0, cfg.parked_share * d.parked_scale):
                        q = p - DIRS[h] * (u + 0.4 + l_ / 2) + rn * road.parking_offset
                        w.statics.append(_static(tag, float(q[0]), float(q[1]), yaw, l_, wd, hh, "parked"))
                    u += l_ + float(rng.uniform(0.8, 2.0))

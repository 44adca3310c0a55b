"""Entry point: one procedurally generated scene as Occ3D grids with exact instances.

`generate_scene(seed, index, config)` is a pure function of its arguments: every random draw
comes from `np.random.SeedSequence([seed, index])` (split into one stream per stage), so the
same inputs give byte-identical arrays and metadata, and another seed another world.

Stages: road network -> ego manoeuvre and its route -> traffic lights (timed for the ego) ->
static world and static instances -> moving traffic -> simulation at `sim_hz` -> keyframes at
2 Hz in the ego frame -> visibility masks by ray casting from the rig.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math

import numpy as np

from ..occ3d import CLASS_NAMES, GRID_SHAPE
from ..rig import Rig, default_rig
from ..scene import KEYFRAME_DT, KEYFRAME_US, Instance, SceneData, SceneMeta
from .config import (
    BOX_BOTTOM_Z,
    EGO_REAR_AXLE_TO_CENTRE,
    EPOCH_US,
    SCENE_GAP_US,
    SyntheticConfig,
)
from .ego import ego_events, plan_ego, program_lights, scene_kind
from .frame import MapFrame, network_extent, scene_streams
from .roads import build_network
from .sim import STATIC
from .signals import make_signals
from .traffic import SimResult, drop_conflicts, run_simulation, spawn_pedestrians, spawn_vehicles
from .voxelise import boxes_in_ego, gather_frame, paint_boxes, static_raster
from .world import District, build_world
from ...errors import BadInput
from ...geometry import planar_pose
from ..raycast import visibility_masks

GRID_REACH = 40.0 * math.sqrt(2.0) + 1.0  # m from the ego origin to the farthest grid corner


def scene_layout(seed: int, index: int, config: SyntheticConfig, streams: tuple | None = None):
    """(road network, ego plan, static world) of scene `index`: what it looks like before any
    traffic or simulation. `streams`: the scene's streams (drawn from here when not given)."""
    rng_net, rng_ego = (streams or scene_streams(seed, index))[:2]
    net = build_network(config, rng_net, extent=network_extent(config))
    plan = plan_ego(net, scene_kind(seed, index), config, rng_ego)
    # Static objects only matter where the grid can see them.
    lo, hi = world_bounds(plan)
    return net, plan, build_world(net, config, [seed, index], lo, hi, work_zone=plan.construction_block)


def world_bounds(plan) -> tuple[np.ndarray, np.ndarray]:
    """The map-frame box [lo, hi] a scene builds its static world over ([2] each)."""
    return plan.route.min(axis=0) - GRID_REACH - 10.0, plan.route.max(axis=0) + GRID_REACH + 10.0


def busy_config(cfg: SyntheticConfig, district: District) -> SyntheticConfig:
    """`cfg` with the district's traffic and pedestrian densities (capped at the config's range)."""
    return dataclasses.replace(cfg, traffic_density=min(cfg.traffic_density * district.traffic_scale, 20.0),
                               pedestrian_density=min(cfg.pedestrian_density * district.pedestrian_scale, 20.0))


class Simulated:
    """Everything up to the simulation, in the map frame (used by generate_scene and tests)."""

    def __init__(self, seed: int, index: int, config: SyntheticConfig, extra_frames: int = 0) -> None:
        """`extra_frames` runs the simulation that many keyframes past the scene's end (the world
        and every agent are planned for the scene alone, so its frames stay the same)."""
        if seed < 0 or index < 0:
            raise BadInput(f"synthetic scene seed={seed}, index={index}: both must be >= 0")
        cfg = config
        self.seed, self.index, self.config = seed, index, cfg
        self.extra_frames = int(extra_frames)
        streams = scene_streams(seed, index)
        rng_sig, rng_veh, rng_ped, rng_glob = streams[2:]
        self.net, self.plan, self.world = net, plan, world = scene_layout(seed, index, cfg, streams)
        self.kind = plan.kind
        self.signals = sig = make_signals(net, rng_sig)
        program_lights(plan, sig, net, cfg, rng_sig)
        route = plan.route
        busy = busy_config(cfg, world.district)
        vehicles = spawn_vehicles(net, sig, busy, rng_veh, route, plan.reserved)
        peds = spawn_pedestrians(net, busy, rng_ped, route)
        # Priority order: ego, its leads, fixed objects, traffic, pedestrians.
        self.agents = drop_conflicts([plan.ego] + plan.leads + self.world.statics + vehicles + peds)
        self.result: SimResult = run_simulation(self.agents, sig, cfg.frames + int(extra_frames), cfg.sim_hz)
        self.log = self.result  # what the scene logged (a rerouted copy keeps it)
        # Map -> global: a random rotation and offset so that scenes do not share a frame.
        self.frame = MapFrame.draw(rng_glob)

    def rerouted(self, start: int, path, s: float, cruise: float, frames: int, walls: list | None = None) -> Simulated:
        """This simulation with the ego put on `path` at keyframe `start` (its centre at arc
        length `s`, cruise speed `cruise`) and run on `frames` keyframes: everyone starts from
        their logged state at `start` and the others react to the new ego as to any agent (the
        simulator's rules: lights, gaps, boxes never overlap). Frames up to `start` stay the log's.
        `walls`: static agents only the run sees (a stop point), left out of the result."""
        ego = dataclasses.replace(self.agents[0], path=path, s=s, v0=cruise)
        agents = [ego] + self.agents[1:]
        walls = list(walls or [])
        state_s = np.r_[self.result.s[start], [w.s for w in walls]]
        state_v = np.r_[self.result.v[start], np.zeros(len(walls))]
        state_s[0] = s
        run = run_simulation(agents + walls, self.signals, frames + 1, self.config.sim_hz, t0=start * KEYFRAME_DT,
                             state=(state_s, state_v))
        n = len(agents)
        keep = {k: np.concatenate([getattr(self.result, k)[:start], getattr(run, k)[:, :n]])
                for k in ("x", "y", "yaw", "v", "s")}
        out = copy.copy(self)
        out.agents = agents
        out.result = SimResult(**keep, ego_trace=run.ego_trace, held=run.held, dt=run.dt,
                               held_per_agent=run.held_per_agent[:n], held_by=run.held_by[:n])
        return out

    # -- map-frame quantities -----------------------------------------------------------------

    def ego_map_poses(self, logged: bool = False) -> np.ndarray:
        """[T, 3] map-frame (x, y, yaw) of the ego origin (rear axle); `logged`: the scene's own
        ego (not a rerouted one)."""
        r = self.log if logged else self.result
        yaw = r.yaw[:, 0]
        x = r.x[:, 0] - EGO_REAR_AXLE_TO_CENTRE * np.cos(yaw)
        y = r.y[:, 0] - EGO_REAR_AXLE_TO_CENTRE * np.sin(yaw)
        return np.stack([x, y, yaw], axis=1)

    def to_global(self, x: np.ndarray, y: np.ndarray, yaw: np.ndarray):
        return self.frame.to_global(x, y, yaw)

    def ego_to_global(self) -> np.ndarray:
        """[T, 4, 4] planar poses of the ego origin in the global frame."""
        p = self.ego_map_poses()
        gx, gy, gyaw = self.to_global(p[:, 0], p[:, 1], p[:, 2])
        return np.stack([planar_pose(float(a), float(b), float(c)) for a, b, c in zip(gx, gy, gyaw)])

    def global_boxes(self) -> np.ndarray:
        """[T, N, 7] global boxes of every agent (index 0, the ego, included), rounded to 5
        decimals exactly as scene.json stores them, so that readers recompute identical voxels."""
        r = self.result
        return self.boxes_of(self.agents, r.x, r.y, r.yaw)

    def boxes_of(self, agents: list, x: np.ndarray, y: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        """Global boxes [..., N, 7] of `agents` at map-frame centres x, y and yaws [..., N]."""
        gx, gy, gyaw = self.to_global(x, y, yaw)
        dims = np.array([[a.length, a.width, a.height] for a in agents])
        out = np.empty((*np.shape(x), 7))
        out[..., 0], out[..., 1] = gx, gy
        out[..., 2] = BOX_BOTTOM_Z + dims[:, 2] / 2
        out[..., 3:6] = dims
        out[..., 6] = np.arctan2(np.sin(gyaw), np.cos(gyaw))
        return np.round(out, 5)

    def manoeuvres(self) -> list[str]:
        return ego_events(self.plan, self.result.s[:, 0], self.result.v[:, 0])


def frame_token(seed: int, index: int, frame: int) -> str:
    return hashlib.md5(f"{seed}/{index}/{frame}".encode()).hexdigest()


def instance_table(
    agents: list, boxes: np.ndarray, local: list[np.ndarray], near: list[np.ndarray]
) -> tuple[dict[str, Instance], np.ndarray]:
    """Instances that have voxels in at least one frame, ids in order of first appearance.

    boxes: [T, N, 7] global; local[t]: [N, 7] in frame t's ego frame; near[t]: agent indices
    whose box may reach frame t's grid. Returns the table and ids [N] uint16 (0: not on grid).
    """
    t_frames = len(local)
    cls = np.array([a.cls for a in agents], np.uint8)
    counts = np.zeros((t_frames, len(agents)), np.int64)
    scratch_s = np.zeros(GRID_SHAPE, np.uint8)
    scratch_i = np.zeros(GRID_SHAPE, np.uint16)
    for t in range(t_frames):  # counting pass: no writes
        c = np.zeros(len(near[t]), np.int64)
        paint_boxes(scratch_s, scratch_i, np.ascontiguousarray(local[t][near[t]]), cls[near[t]],
                    np.zeros(len(near[t]), np.uint16), c, False)
        counts[t, near[t]] = c
    visible = np.nonzero(counts.any(axis=0))[0]
    first = np.array([int(np.argmax(counts[:, a] > 0)) for a in visible], np.int64)
    order = visible[np.lexsort((visible, first))]
    if len(order) >= np.iinfo(np.uint16).max:  # pragma: no cover - a scene holds a few hundred
        raise RuntimeError("too many instances for uint16 instance grids")
    ids = np.zeros(len(agents), np.uint16)
    ids[order] = np.arange(1, len(order) + 1)
    table: dict[str, Instance] = {}
    per_class: dict[int, int] = {}
    for a in order:
        c_ = int(agents[a].cls)
        per_class[c_] = per_class.get(c_, 0) + 1
        name = f"{CLASS_NAMES[c_]}_{per_class[c_]}"
        frames = [int(t) for t in np.nonzero(counts[:, a] > 0)[0]]
        attrs = {"type": agents[a].tag, "static": bool(agents[a].kind == STATIC)}
        table[name] = Instance(name, int(ids[a]), c_, frames, boxes[frames, a].copy(), attrs)
    return table, ids


def near_boxes(local: list[np.ndarray], agents: list) -> list[np.ndarray]:
    """Per frame, the agents whose ego-frame box may reach the grid (agent 0, the ego, never)."""
    half_diag = np.array([math.hypot(a.length, a.width) / 2 for a in agents])
    not_ego = np.arange(len(agents)) > 0
    return [np.nonzero((np.abs(lb[:, 0]) < 40.0 + half_diag) & (np.abs(lb[:, 1]) < 40.0 + half_diag) & not_ego)[0]
            for lb in local]


def voxelise_frames(raster, ego_map: np.ndarray, local: list[np.ndarray], near: list[np.ndarray], agents: list,
                    ids: np.ndarray, rig: Rig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Semantics, instances and the LiDAR / camera masks [T, 200, 200, 16] of the ego at map-frame
    poses ego_map [T, 3]: the static raster, then every agent with an instance id in its box."""
    t_frames = len(local)
    cls = np.array([a.cls for a in agents], np.uint8)
    semantics = np.empty((t_frames, *GRID_SHAPE), np.uint8)
    instances = np.zeros((t_frames, *GRID_SHAPE), np.uint16)
    mask_lidar = np.empty_like(semantics)
    mask_camera = np.empty_like(semantics)
    for t in range(t_frames):
        semantics[t] = gather_frame(raster, *ego_map[t])
        sel = near[t][ids[near[t]] > 0]
        paint_boxes(semantics[t], instances[t], np.ascontiguousarray(local[t][sel]), cls[sel], ids[sel],
                    np.zeros(len(sel), np.int64), True)
        mask_lidar[t], mask_camera[t] = visibility_masks(semantics[t], rig)
    return semantics, instances, mask_lidar, mask_camera


def generate_scene(seed: int, index: int, config: SyntheticConfig | None = None, rig: Rig | None = None) -> SceneData:
    """One synthetic scene: semantics, masks and instance grids [T, 200, 200, 16] with metadata.

    Deterministic in (seed, index, config); seed and index must be >= 0.
    """
    cfg = config or SyntheticConfig()
    rig = rig or default_rig()
    sim_ = Simulated(seed, index, cfg)
    t_frames = cfg.frames
    ego_map = sim_.ego_map_poses()
    poses = sim_.ego_to_global()
    boxes = sim_.global_boxes()

    # Static world over the ground the ego grid ever covers.
    raster = static_raster(sim_.net, sim_.world, ego_map[:, :2].min(axis=0) - GRID_REACH,
                           ego_map[:, :2].max(axis=0) + GRID_REACH)

    # Boxes near each frame's grid (the ego itself, agent 0, is not in the occupancy).
    agents = sim_.agents
    local = [boxes_in_ego(boxes[t], poses[t]) for t in range(t_frames)]
    near = near_boxes(local, agents)
    table, ids = instance_table(sim_.agents, boxes, local, near)

    semantics, instances, mask_lidar, mask_camera = voxelise_frames(raster, ego_map, local, near, agents, ids, rig)

    meta = SceneMeta(
        name=f"scene-{index:04d}",
        tokens=[frame_token(seed, index, f) for f in range(t_frames)],
        timestamps=EPOCH_US + index * SCENE_GAP_US + np.arange(t_frames, dtype=np.int64) * KEYFRAME_US,
        ego_to_global=poses,
        rig=rig,
        instances=table,
        split="val" if index % 4 == 3 else "train",
        source="synthetic",
        extra={"seed": int(seed), "manoeuvres": sim_.manoeuvres()},
    )
    return SceneData(meta, semantics, mask_lidar, mask_camera, instances)


__all__ = ["SyntheticConfig", "Simulated", "frame_token", "generate_scene", "instance_table", "near_boxes",
           "voxelise_frames"]

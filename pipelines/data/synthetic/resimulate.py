"""Counterfactual ground truth: a synthetic scene seen from another ego trajectory.

The scene's world is rebuilt from (seed, index, config) exactly as `generate_scene` builds it; the
other agents are replayed from the logged simulation (NAVSIM's non-reactive mode), the ego is put
at the given poses, and each keyframe is voxelised in that ego's frame with instances (a table of
its own, numbered by first appearance) and ray-cast LiDAR / camera masks. Where the trajectory
leaves the area the logged world was built over, the world is extended (blocks and street
furniture draw from per-block streams, so the blocks already there do not change; parked vehicles
and cones of the new area are included, static). Along the logged trajectory the result equals
the prepared dataset's labels, masks and instances exactly.

Past the scene's last frame the simulation runs on (`Simulated(extra_frames=…)`, up to MAX_BEYOND
keyframes): its first frames stay exactly those of the scene, and the agents follow the paths they
were planned (those that reach a path's end stop there). Others do not react to the ego.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rig import Rig, default_rig
from ..scene import KEYFRAME_DT, Instance
from .config import SyntheticConfig
from .generate import GRID_REACH, Simulated, instance_table, near_boxes, voxelise_frames, world_bounds
from .routes import scene_roads, simulated, synthetic_origin
from .voxelise import boxes_in_ego, static_raster
from .world import build_world
from ...errors import BadInput
from ...geometry import planar_pose

LATTICE = 2.0  # m: raster origins move in steps of 2 m (a multiple of the voxel and of the floor)
MAX_BEYOND = 600  # keyframes the simulation may run past a scene's end (5 min)


@dataclass
class Counterfactual:
    semantics: np.ndarray  # [K, 200, 200, 16] uint8
    instances: np.ndarray  # [K, 200, 200, 16] uint16
    mask_lidar: np.ndarray
    mask_camera: np.ndarray
    table: dict[str, Instance]  # boxes at the K frames
    ego_to_global: np.ndarray  # [K, 4, 4]
    frames: np.ndarray  # [K] the log frames they are seen at


def _aligned(lo: np.ndarray, hi: np.ndarray, ref_lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds covering [lo, hi] whose floor keeps the reference raster's lattice."""
    base = np.floor(ref_lo)
    lo2 = base - LATTICE * np.ceil(np.maximum(base - lo, 0.0) / LATTICE)
    return lo2, np.maximum(hi, lo2)


def resimulate(seed: int, index: int, config: SyntheticConfig, ego_map: np.ndarray, frames,
               rig: Rig | None = None, sim: Simulated | None = None) -> Counterfactual:
    """The scene seen by an ego at map-frame poses ego_map [K, 3] (x, y, yaw of the rear axle) at
    the log frames `frames` [K] (0 <= f < config.frames)."""
    frames = np.asarray(frames, dtype=np.int64)
    ego_map = np.asarray(ego_map, dtype=np.float64).reshape(-1, 3)
    if len(frames) != len(ego_map):
        raise ValueError(f"{len(ego_map)} poses for {len(frames)} frames")
    if len(frames) and frames.min() < 0:
        raise BadInput(f"counterfactual frames from {frames.min()}: frames count from 0")
    beyond = max(int(frames.max()) - (config.frames - 1), 0) if len(frames) else 0
    if beyond > MAX_BEYOND:
        raise BadInput(f"counterfactual frames up to {frames.max()}: the simulator runs at most {MAX_BEYOND} keyframes "
                       f"({MAX_BEYOND * KEYFRAME_DT:g} s) past the scene's {config.frames} frames")
    if sim is None or sim.result.x.shape[0] <= (frames.max() if len(frames) else 0):
        sim = simulated(seed, index, config, beyond)
    rig = rig or default_rig()
    log_map = sim.ego_map_poses(logged=True)[:config.frames]
    ref_lo = log_map[:, :2].min(axis=0) - GRID_REACH  # generate_scene's raster bounds
    ref_hi = log_map[:, :2].max(axis=0) + GRID_REACH
    need_lo = np.minimum(ref_lo, ego_map[:, :2].min(axis=0) - GRID_REACH)
    need_hi = np.maximum(ref_hi, ego_map[:, :2].max(axis=0) + GRID_REACH)
    agents, boxes = list(sim.agents), sim.global_boxes()[frames]  # [K, N, 7]
    world = sim.world
    built_lo, built_hi = world_bounds(sim.plan)  # what Simulated built the world over
    if np.any(need_lo < built_lo) or np.any(need_hi > built_hi):
        world = build_world(sim.net, config, [seed, index], np.minimum(need_lo - 10.0, built_lo),
                            np.maximum(need_hi + 10.0, built_hi), work_zone=sim.plan.construction_block)
        known = {(a.cls, a.pose) for a in sim.world.statics}
        extra = [a for a in world.statics if (a.cls, a.pose) not in known]
        if extra:
            pose = np.array([a.pose for a in extra])  # [E, 3] fixed map-frame poses
            fixed = sim.boxes_of(extra, pose[:, 0], pose[:, 1], pose[:, 2])
            boxes = np.concatenate([boxes, np.broadcast_to(fixed, (len(frames), *fixed.shape))], axis=1)
            agents += extra
    lo, hi = (ref_lo, ref_hi) if np.all(need_lo >= ref_lo) and np.all(need_hi <= ref_hi) else _aligned(need_lo, need_hi, ref_lo)
    raster = static_raster(sim.net, world, lo, hi)
    gx, gy, gyaw = sim.to_global(ego_map[:, 0], ego_map[:, 1], ego_map[:, 2])
    poses = np.stack([planar_pose(float(a), float(b), float(c)) for a, b, c in zip(gx, gy, gyaw)]) if len(frames) \
        else np.zeros((0, 4, 4))
    local = [boxes_in_ego(boxes[k], poses[k]) for k in range(len(frames))]
    near = near_boxes(local, agents)
    table, ids = instance_table(agents, boxes, local, near)
    sem, inst, ml, mc = voxelise_frames(raster, ego_map, local, near, agents, ids, rig)
    return Counterfactual(sem, inst, ml, mc, table, poses, frames)


def scene_counterfactual(scene, start: int, poses_in_start: np.ndarray, sim: Simulated | None = None) -> Counterfactual:
    """The truth of a dataset scene along ego poses [H, 4, 4] given in the start ego frame at the
    keyframes after `start` (BadInput for a scene without a simulator behind it)."""
    origin = synthetic_origin(scene)
    if origin is None:
        raise BadInput(f"scene '{scene.name}' of dataset '{scene.dataset.name}' is not a synthetic scene of this "
                       "generator: there is no simulator to re-run it")
    seed, index, config = origin
    roads = scene_roads(seed, index, config)
    world = scene.poses[start][None] @ np.asarray(poses_in_start, dtype=np.float64)
    ego_map = np.array([roads.to_map(p) for p in world])
    return resimulate(seed, index, config, ego_map, start + 1 + np.arange(len(world)), scene.rig, sim)

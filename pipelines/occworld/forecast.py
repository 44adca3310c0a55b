"""`gdrive forecast`: the future occupancy of a scene under a chosen ego trajectory.

forecasts/<name>/
    manifest.json
    gts/<scene>/<token>/labels.npz   Occ3D layout (semantics + LiDAR/camera visibility masks
                                     ray-cast from the scene's rig), one per future keyframe
    frames.json                      tokens, times, poses, controls, commands, control adherence,
                                     safety (ego box vs obstacles, driveable ground; metrics/safety.py)
    preview.mp4                      top-down occupancy with the commanded trajectory (2 Hz)
"""

from __future__ import annotations

import importlib.resources

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..console import ui
from ..data.controls import COMMANDS, command_one_hot, step_controls
from ..data.demo_world import open_dataset
from ..data.occ3d import instances_npz_bytes, labels_npz_bytes
from ..errors import BadInput
from ..limits import MAX_HORIZON, MAX_SPEED
from ..metrics.ego_motion import motion_error, register_static
from ..metrics.safety import ego_safety, safety_line, summarise_safety
from ..data.preview import preview_frame, write_mp4
from ..runtime.distributed import resolve_device
from .forecast_stage import PAST
from ..data.synthetic.routes import scene_route
from .surface_routes import surface_route
from .trajectories import (NAMED, SHAPES, commands_of, from_waypoints, named, poses_of, read_waypoints,
                           unknown_trajectory)
from ..data.scene import KEYFRAME_DT
from .world_model import forecast_latents, open_world_model, window_steps
from ..data.raycast import visibility_masks
from ..store import Workspace, artifact_id, find_artifact, publish
from ..store.artifacts import read_manifest
from ..store.names import check_name, default_name

SCHEMA = 2  # 2: frames.json and the manifest carry the safety report
# package data (geniedrive.assets): the checkout's assets/ folder, or the installed wheel's copy
DEMO_MODEL = Path(str(importlib.resources.files("geniedrive.assets") / "demo" / "world-small"))
DEFAULT_HORIZON = 6  # 3 s, the GenieDrive protocol


@dataclass
class ForecastRequest:
    scene: str
    traj: str = "straight"
    dataset: str = "latest"
    model: str | None = None  # None: the shipped demo weights
    frame: int | None = None  # start keyframe; None: the first with 3 past frames
    horizon: int | None = None  # future keyframes at 2 Hz
    speed: float | None = None  # m/s for named trajectories; None: the logged speed at the start
    name: str | None = None
    previews: bool = True
    adherence: bool = True
    device: str = "auto"
    force: bool = False
    world: str = "model"  # model | simulator | auto (simulator for synthetic scenes, else model)


WORLDS = ("model", "simulator", "auto")


def resolve_world(world: str, scene) -> str:
    """'model' or 'simulator' for --world on this scene (BadInput when the simulator is asked for a
    scene without one)."""
    from ..data.synthetic.routes import synthetic_origin

    if world not in WORLDS:
        raise BadInput(f"--world '{world}': unknown; choose one of {', '.join(WORLDS)}")
    has_sim = synthetic_origin(scene) is not None
    if world == "auto":
        return "simulator" if has_sim else "model"
    if world == "simulator" and not has_sim:
        raise BadInput(f"--world simulator: scene '{scene.name}' of dataset '{scene.dataset.name}' has no simulator behind "
                       "it (only synthetic scenes of this generator do); use --world model")
    return world


def _check_request(req: ForecastRequest) -> None:
    if req.name is not None:
        check_name(req.name)
    if req.horizon is not None and not 1 <= req.horizon <= MAX_HORIZON:
        raise BadInput(f"--horizon {req.horizon}: must be at least 1 and at most {MAX_HORIZON} future keyframes "
                       f"(2 Hz; 6 = 3 s, {MAX_HORIZON} = {MAX_HORIZON * KEYFRAME_DT:g} s)")
    check_speed(req.speed)


def check_speed(speed: float | None) -> None:
    if speed is not None and not (math.isfinite(speed) and 0 <= speed <= MAX_SPEED):
        raise BadInput(f"--speed {speed}: must be a number of m/s between 0 and {MAX_SPEED:g}")


def default_start(scene) -> int:
    """The first keyframe with 3 past frames (or the last one of a shorter scene)."""
    return min(PAST, scene.num_frames - 1)


def world_model_folder(ws: Workspace, ref: str | None) -> Path:
    """The world model's folder (None: the shipped demo weights); BadInput when it is missing or
    holds no forecaster."""
    if ref is None and not (DEMO_MODEL / "config.json").is_file():
        raise BadInput(f"--model: the demo weights are missing from {DEMO_MODEL}; pass --model NAME (gdrive train-forecaster)")
    folder = Path(ref) if ref else DEMO_MODEL
    if not (folder / "config.json").is_file():
        folder = find_artifact(ws, "model", ref, "--model").path
    if not (folder / "forecaster.safetensors").is_file():
        raise BadInput(f"--model '{ref}': {folder} holds no forecaster.safetensors (a VAE only); train one with "
                       f"`gdrive train-forecaster --stage predict --init {ref}`")
    return folder


def world_model_id(folder: Path) -> str:
    """The id a forecast records for its world model: the manifest id, else a weights hash."""
    return (read_manifest(folder) or {}).get("id") or hashlib.sha256(
        (folder / "forecaster.safetensors").read_bytes()).hexdigest()[:16]


def _is_file_traj(traj: str) -> bool:
    return traj.lower().endswith((".csv", ".json")) or Path(traj).is_file()


def resolve_trajectory(req: ForecastRequest, scene, start: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(poses [H, 4, 4] in the start ego frame, commands [H], description for frames.json)."""
    if req.traj == "gt":
        left = scene.num_frames - 1 - start
        horizon = req.horizon or min(DEFAULT_HORIZON, left)
        if left <= 0 or horizon > left:
            raise BadInput(f"--horizon {horizon}: scene '{scene.name}' has {left} logged frames after frame {start}; "
                           f"pass --horizon {max(left, 1)} or an earlier --frame")
        rel = np.linalg.inv(scene.poses[start])[None] @ scene.poses[start + 1:]
        poses = rel[:horizon]
        extra = rel[horizon:]
        return poses, commands_of(poses, extra), {"kind": "gt"}
    if _is_file_traj(req.traj):
        path = Path(req.traj)
        if not path.is_file():
            raise BadInput(f"--traj {path}: no such waypoint file; give a CSV/JSON with t, x, y[, yaw_deg] or a name: "
                           f"{', '.join(NAMED)}, gt")
        xyyaw = from_waypoints(read_waypoints(path), req.horizon, str(path))
        poses = poses_of(xyyaw)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return poses, commands_of(poses), {"kind": "file", "file": str(path), "sha256_16": digest}
    if req.traj not in NAMED and req.traj not in SHAPES:
        raise unknown_trajectory(req.traj)
    logged = float(scene.controls[start, 3])
    speed = req.speed if req.speed is not None else (route_speed(logged) if req.traj in NAMED else logged)
    horizon = req.horizon or DEFAULT_HORIZON
    steps = horizon + DEFAULT_HORIZON  # + 3 s so the last commands look ahead
    route = scene_route(scene, start, req.traj, speed, steps) if req.traj in NAMED else None
    if route is not None:  # a synthetic scene: its road graph and its simulation
        xyyaw, kind = route.xyyaw, "route"
    elif req.traj in NAMED:  # elsewhere: lanes and junctions of the observed driveable surface
        xyyaw = surface_route(scene.semantics(start), req.traj, speed, steps, f"frame {start} of '{scene.name}'")
        kind = "surface_route"
    else:
        xyyaw, kind = named(req.traj, speed, steps), "named"
    poses = poses_of(xyyaw)
    return poses[:horizon], commands_of(poses[:horizon], poses[horizon:]), {"kind": kind, "name": req.traj, "speed": speed}


def route_simulation(scene, start: int, desc: dict, horizon: int):
    """The simulation a named route was driven in (its others reacted to the ego), or None (other
    trajectories: the others are replayed from the log)."""
    if desc["kind"] != "route":
        return None
    return scene_route(scene, start, desc["name"], desc["speed"], horizon + DEFAULT_HORIZON).sim


ROUTE_SPEED = 8.0  # m/s: named routes from a standing start drive at this speed unless --speed says


def route_speed(logged: float) -> float:
    """The cruise speed of a named route: the logged speed at the start, or ROUTE_SPEED when the
    ego stands there (a route from a standing start would otherwise never move)."""
    return logged if logged > 1.0 else ROUTE_SPEED


@torch.no_grad()
def forecast_occupancy(model, observed: np.ndarray, observed_poses: np.ndarray, poses: np.ndarray, commands: np.ndarray,
                       device: torch.device) -> np.ndarray:
    """observed [P+1, X, Y, Z] labels (last = start), observed_poses [P+1, 4, 4] in the start ego
    frame, poses [H, 4, 4] future ego poses in the start frame, commands [H] -> [H, X, Y, Z] uint8."""
    occ = torch.from_numpy(observed).to(device).long()
    lat = model.vae.encode(occ, sample=False)[None]
    allp = torch.from_numpy(np.concatenate([observed_poses, poses]).astype(np.float32)).to(device)[None]
    cmds = torch.from_numpy(command_one_hot(commands)).to(device)[None]
    pred_lat, moved = forecast_latents(model, lat, window_steps(allp), cmds)
    return np.stack([model.decode_future(pred_lat[:, i], occ[-1:], moved[:, i]).argmax(1)[0].to(torch.uint8).cpu().numpy()
                     for i in range(pred_lat.shape[1])])


def report_safety(summary: dict | None) -> None:
    """The safety report's one line: a warning when the ego hits something or leaves the road."""
    if summary is not None:
        (ui.info if summary["ok"] else ui.warn)(safety_line(summary, KEYFRAME_DT))


def run_forecast(ws: Workspace, req: ForecastRequest) -> dict:
    _check_request(req)
    ds = open_dataset(req.dataset, ws.root)
    scene = ds.scene(req.scene)
    start = default_start(scene) if req.frame is None else req.frame
    if not 0 <= start < scene.num_frames:
        raise BadInput(f"--frame {start}: scene '{scene.name}' has frames 0..{scene.num_frames - 1}")
    poses, cmds, traj_desc = resolve_trajectory(req, scene, start)
    world_kind = resolve_world(req.world, scene)
    id_fields = {"scene": scene.name, "frame": start, "traj": traj_desc, "horizon": len(poses),
                 "poses": np.round(poses, 6).tolist(), "adherence": req.adherence}
    inputs = {"dataset": ds.id}
    if world_kind == "model":
        model_dir = world_model_folder(ws, req.model)
        model, _ = open_world_model(str(model_dir), ws.root)
        inputs["model"] = world_model_id(model_dir)
        device = resolve_device(req.device)
        model.to(device)
    else:
        model_dir = None
        id_fields["world"] = "simulator"
    ident = artifact_id("forecast", SCHEMA, id_fields, inputs)
    label = traj_desc.get("name", traj_desc["kind"])
    name = req.name or default_name(f"{ds.name}-{scene.name}-{label}", ident)  # the dataset too: one scene, many datasets

    def build(w) -> dict:
        first = max(0, start - PAST)
        observed = np.stack([scene.semantics(i) for i in range(first, start + 1)])
        obs_poses = np.linalg.inv(scene.poses[start])[None] @ scene.poses[first:start + 1]
        truth = None
        if world_kind == "model":
            ui.info(f"forecasting {len(poses)} keyframes of '{scene.name}' from frame {start} under {label}")
            future = forecast_occupancy(model, observed, obs_poses, poses, cmds, device)
        else:
            from ..data.synthetic.resimulate import scene_counterfactual

            ui.info(f"re-simulating {len(poses)} keyframes of '{scene.name}' from frame {start} under {label} "
                    "(the simulator's world, not a world model)")
            truth = scene_counterfactual(scene, start, poses, route_simulation(scene, start, traj_desc, len(poses)))
            future = truth.semantics
            truth_names = {inst.id: n for n, inst in truth.table.items()}
        start_token = scene.frames[start].token
        t0 = int(scene.timestamps_us[start])
        world = scene.poses[start][None] @ poses
        stamps = t0 + (np.arange(1, len(poses) + 1) * KEYFRAME_DT * 1e6).astype(np.int64)
        ctrl = step_controls(np.concatenate([scene.poses[start][None], world]), np.r_[t0, stamps])
        frames = []
        start_instances = scene.frames[start].instance_grid()
        names = {inst.id: name for name, inst in scene.instances.items()}
        with ui.progress("writing forecast", len(future)) as bar:
            for i, sem in enumerate(future):
                token = f"{start_token}+{i + 1:03d}"
                if truth is None:
                    lidar, camera = visibility_masks(sem, scene.rig)
                else:
                    lidar, camera = truth.mask_lidar[i], truth.mask_camera[i]
                    w.write_bytes(str(Path("gts") / scene.name / token / "instances.npz"), instances_npz_bytes(truth.instances[i]))
                w.write_bytes(str(Path("gts") / scene.name / token / "labels.npz"), labels_npz_bytes(sem, lidar, camera))
                entry = {"token": token, "t_s": (i + 1) * KEYFRAME_DT, "timestamp_us": int(stamps[i]),
                         "ego_in_start": poses[i].tolist(), "ego_to_global": world[i].tolist(),
                         "control": dict(zip(("dx", "dy", "dyaw", "speed", "yaw_rate"), map(float, ctrl[i]))),
                         "command": COMMANDS[int(cmds[i])]}
                if req.adherence:
                    recovered, share = register_static(sem, observed[-1], around=poses[i])
                    terr, yerr = motion_error(recovered, poses[i])
                    entry["recovered_ego_in_start"] = recovered.tolist()
                    entry["adherence"] = {"translation_m": terr, "yaw_deg": math.degrees(yerr), "matched_share": share}
                # The ego box where the trajectory puts it: in the observed start frame (what was
                # there at t = 0, instances named) and at the centre of the forecast frame.
                entry["safety"] = {"observed": ego_safety(observed[-1], poses[i], start_instances, names),
                                   "predicted": ego_safety(sem, np.eye(4)) if truth is None else
                                   ego_safety(sem, np.eye(4), truth.instances[i], truth_names)}
                frames.append(entry)
                bar.advance()
        safety = summarise_safety([f["safety"] for f in frames])
        w.write_json("frames.json", {"scene": scene.name, "dataset": ds.name, "start_frame": start,
                                     "start_token": start_token, "world": world_kind,
                                     "model": None if model_dir is None else str(model_dir), "trajectory": traj_desc,
                                     "safety": safety, "frames": frames})
        if req.previews:
            path = np.concatenate([np.zeros((1, 2)), poses[:, :2, 3]])
            imgs = [preview_frame(observed[-1], path, 0)]
            for i, sem in enumerate(future):
                here = (np.linalg.inv(poses[i])[None] @ np.concatenate([np.eye(4)[None], poses]))[:, :2, 3]
                imgs.append(preview_frame(sem, here, i + 1))
            write_mp4(w.path("preview.mp4"), imgs, 2.0)
        summary = {"scene": scene.name, "frames": len(frames), "trajectory": traj_desc, "world": world_kind, "safety": safety}
        if req.adherence:
            summary["adherence_last"] = frames[-1]["adherence"]
        return summary

    res = publish(ws, "forecast", "forecast", SCHEMA, name, dataclasses.asdict(req), id_fields, inputs, build, force=req.force)
    if res.reused:
        ui.info(f"reusing forecast '{name}' (id {ident}); pass --force to recompute")
    else:
        ui.info(f"wrote forecast '{name}' (id {ident}) to {res.artifact.path}")
    report_safety(res.artifact.manifest.get("safety"))
    return {"name": name, "id": ident, "path": str(res.artifact.path), "reused": res.reused,
            **{k: res.artifact.manifest.get(k) for k in ("frames", "trajectory", "world", "adherence_last", "safety")
               if k in res.artifact.manifest}}

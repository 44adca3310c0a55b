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
from ..data.dataset import Scene
from ..data.demo_world import open_dataset
from ..data.sequence import KeyframeGrids, OccupancySequence
from ..data.occ3d import instances_npz_bytes, labels_npz_bytes
from ..errors import BadInput, TrajectoryTooShort
from ..limits import MAX_HORIZON, MAX_SPEED
from ..metrics.ego_motion import motion_error, register_static
from ..metrics.safety import ego_safety, safety_line, summarise_safety
from ..data.preview import preview_frame, write_mp4
from ..runtime.distributed import resolve_device
from .requests import DEFAULT_HORIZON, PAST, ForecastRequest
from ..data.synthetic.routes import scene_route
from .surface_routes import surface_route
from .trajectories import (NAMED, SHAPES, commands_of, from_waypoints, named, poses_of, read_waypoints,
                           unknown_trajectory)
from ..data.scene import KEYFRAME_DT
from .world_model import WorldModel, forecast_latents, open_world_model, window_steps
from ..data.raycast import visibility_masks
from ..store import Workspace, artifact_id, find_artifact, publish
from ..store.artifacts import read_manifest
from ..store.names import check_name, default_name

SCHEMA = 2  # 2: frames.json and the manifest carry the safety report
# package data (geniedrive.assets): the checkout's assets/ folder, or the installed wheel's copy
DEMO_MODEL = Path(str(importlib.resources.files("geniedrive.assets") / "demo" / "world-small"))


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


@dataclass
class Trajectory:
    """A commanded ego trajectory from a start keyframe: poses [H, 4, 4] in the start ego frame,
    commands [H] (indices into COMMANDS), and the description frames.json records."""

    poses: np.ndarray
    commands: np.ndarray
    description: dict

    @property
    def horizon(self) -> int:
        return len(self.poses)

    @property
    def label(self) -> str:
        return self.description.get("name", self.description["kind"])


def plan_trajectory(scene, start: int, traj: str = "straight", horizon: int | None = None,
                    speed: float | None = None) -> Trajectory:
    """`traj` (a named route or shape, a waypoint file, or `gt`) from keyframe `start` of `scene` for
    `horizon` keyframes (default 6, or a file's length). TrajectoryTooShort when a logged or
    waypoint trajectory ends before the horizon."""
    if traj == "gt":
        left = scene.num_frames - 1 - start
        horizon = horizon or min(DEFAULT_HORIZON, left)
        if left <= 0 or horizon > left:
            raise TrajectoryTooShort(f"--horizon {horizon}: scene '{scene.name}' has {left} logged frames after frame "
                                     f"{start}; pass --horizon {max(left, 1)} or an earlier --frame", available=max(left, 0))
        rel = np.linalg.inv(scene.poses[start])[None] @ scene.poses[start + 1:]
        poses = rel[:horizon]
        return Trajectory(poses, commands_of(poses, rel[horizon:]), {"kind": "gt"})
    if _is_file_traj(traj):
        path = Path(traj)
        if not path.is_file():
            raise BadInput(f"--traj {path}: no such waypoint file; give a CSV/JSON with t, x, y[, yaw_deg] or a name: "
                           f"{', '.join(NAMED)}, gt")
        poses = poses_of(from_waypoints(read_waypoints(path), horizon, str(path)))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return Trajectory(poses, commands_of(poses), {"kind": "file", "file": str(path), "sha256_16": digest})
    if traj not in NAMED and traj not in SHAPES:
        raise unknown_trajectory(traj)
    check_speed(speed)
    logged = float(scene.controls[start, 3])
    speed = speed if speed is not None else (route_speed(logged) if traj in NAMED else logged)
    horizon = horizon or DEFAULT_HORIZON
    steps = horizon + DEFAULT_HORIZON  # + 3 s so the last commands look ahead
    route = scene_route(scene, start, traj, speed, steps) if traj in NAMED else None
    if route is not None:  # a synthetic scene: its road graph and its simulation
        xyyaw, kind = route.xyyaw, "route"
    elif traj in NAMED:  # elsewhere: lanes and junctions of the observed driveable surface
        xyyaw = surface_route(scene.semantics(start), traj, speed, steps, f"frame {start} of '{scene.name}'")
        kind = "surface_route"
    else:
        xyyaw, kind = named(traj, speed, steps), "named"
    poses = poses_of(xyyaw)
    return Trajectory(poses[:horizon], commands_of(poses[:horizon], poses[horizon:]),
                      {"kind": kind, "name": traj, "speed": speed})


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


def observed_frames(scene, start: int) -> tuple[np.ndarray, np.ndarray]:
    """The logged past the forecaster sees: labels [P+1, X, Y, Z] up to and including `start`, and
    their ego poses [P+1, 4, 4] in the start ego frame."""
    first = max(0, start - PAST)
    observed = np.stack([scene.semantics(i) for i in range(first, start + 1)])
    return observed, np.linalg.inv(scene.poses[start])[None] @ scene.poses[first:start + 1]


@dataclass
class Forecast:
    """The future of `scene` from keyframe `start` under `trajectory`: labels [H, X, Y, Z] uint8 at
    the H keyframes after the start (2 Hz), in each keyframe's own ego frame; observed [P+1, X, Y, Z]
    the logged past it was made from; truth the simulator's world (its masks, instances and boxes)
    when `world` is 'simulator', else None."""

    scene: Scene
    start: int
    trajectory: Trajectory
    world: str
    labels: np.ndarray
    observed: np.ndarray
    truth: object | None = None

    @property
    def tokens(self) -> tuple[str, ...]:
        base = self.scene.frames[self.start].token
        return tuple(f"{base}+{i + 1:03d}" for i in range(len(self.labels)))

    @property
    def times(self) -> np.ndarray:
        """[H] seconds after the start keyframe."""
        return np.arange(1, len(self.labels) + 1) * KEYFRAME_DT

    def sequence(self, with_current: bool = False) -> OccupancySequence:
        """The forecast keyframes as an OccupancySequence (poses in the start ego frame); with
        `with_current`, the logged start keyframe first, as `generate` renders it."""
        digest = hashlib.sha256(np.ascontiguousarray(self.labels).tobytes())
        digest.update(np.round(self.trajectory.poses, 6).tobytes())
        ds = self.scene.dataset
        instances = None if self.truth is None else KeyframeGrids.of(self.truth.instances)
        future = OccupancySequence(
            self.scene.name, self.tokens, self.times, self.trajectory.poses, self.scene.rig,
            KeyframeGrids.of(self.labels), instances, ("forecast",) * len(self.labels), (None,) * len(self.labels),
            {"forecast": digest.hexdigest()[:16], "dataset": ds.id, "scene": self.scene.name, "world": self.world},
            f"{ds.name}-{self.scene.name}-{self.trajectory.label}", self.scene.frames[self.start].token)
        return OccupancySequence.from_scene(self.scene, [self.start]).then(future) if with_current else future


def forecast(model: WorldModel | None, scene: Scene, start: int | None = None, traj: str | Trajectory = "straight",
             *, horizon: int | None = None, speed: float | None = None, world: str = "model",
             device: str | torch.device | None = None) -> Forecast:
    """The future occupancy of `scene` from keyframe `start` (default: the first with 3 past frames)
    under `traj` (a name, a waypoint file, 'gt', or a planned Trajectory) for `horizon` keyframes,
    by the world model (`world='model'`) or the synthetic scene's simulator ('simulator'; 'auto'
    picks it where there is one). `device`: where the model runs (default: where it is)."""
    start = default_start(scene) if start is None else int(start)
    if not 0 <= start < scene.num_frames:
        raise BadInput(f"--frame {start}: scene '{scene.name}' has frames 0..{scene.num_frames - 1}")
    if horizon is not None and not 1 <= horizon <= MAX_HORIZON:
        raise BadInput(f"--horizon {horizon}: must be at least 1 and at most {MAX_HORIZON} future keyframes "
                       f"(2 Hz; 6 = 3 s, {MAX_HORIZON} = {MAX_HORIZON * KEYFRAME_DT:g} s)")
    trajectory = traj if isinstance(traj, Trajectory) else plan_trajectory(scene, start, traj, horizon, speed)
    kind = resolve_world(world, scene)
    observed, obs_poses = observed_frames(scene, start)
    if kind == "simulator":
        from ..data.synthetic.resimulate import scene_counterfactual

        sim = route_simulation(scene, start, trajectory.description, trajectory.horizon)
        truth = scene_counterfactual(scene, start, trajectory.poses, sim)
        return Forecast(scene, start, trajectory, kind, truth.semantics, observed, truth)
    if model is None:
        raise BadInput("--model: forecasting with the world model needs one (WorldModel.from_pretrained(DEMO_MODEL), "
                       "or world='simulator' for a synthetic scene)")
    dev = next(model.parameters()).device if device is None else resolve_device(str(device))
    labels = forecast_occupancy(model.to(dev), observed, obs_poses, trajectory.poses, trajectory.commands, dev)
    return Forecast(scene, start, trajectory, kind, labels, observed, None)


def report_safety(summary: dict | None) -> None:
    """The safety report's one line: a warning when the ego hits something or leaves the road."""
    if summary is not None:
        (ui.info if summary["ok"] else ui.warn)(safety_line(summary, KEYFRAME_DT))


def run_forecast(ws: Workspace, req: ForecastRequest, trajectory: Trajectory | None = None) -> dict:
    """`gdrive forecast`: `forecast` written as a cached forecast artifact. `trajectory`: already
    planned from the request (generate plans it to check --frames), so it is not planned twice."""
    _check_request(req)
    ds = open_dataset(req.dataset, ws.root)
    scene = ds.scene(req.scene)
    start = default_start(scene) if req.frame is None else req.frame
    if not 0 <= start < scene.num_frames:
        raise BadInput(f"--frame {start}: scene '{scene.name}' has frames 0..{scene.num_frames - 1}")
    if trajectory is None:
        trajectory = plan_trajectory(scene, start, req.traj, req.horizon, req.speed)
    poses = trajectory.poses
    world_kind = resolve_world(req.world, scene)
    id_fields = {"scene": scene.name, "frame": start, "traj": trajectory.description, "horizon": len(poses),
                 "poses": np.round(poses, 6).tolist(), "adherence": req.adherence}
    inputs = {"dataset": ds.id}
    model, model_dir = None, None
    if world_kind == "model":
        model_dir = world_model_folder(ws, req.model)
        model, _ = open_world_model(str(model_dir), ws.root)
        inputs["model"] = world_model_id(model_dir)
        model.to(resolve_device(req.device))
    else:
        id_fields["world"] = "simulator"
    ident = artifact_id("forecast", SCHEMA, id_fields, inputs)
    label = trajectory.label
    name = req.name or default_name(f"{ds.name}-{scene.name}-{label}", ident)  # the dataset too: one scene, many datasets

    def build(w) -> dict:
        if world_kind == "model":
            ui.info(f"forecasting {len(poses)} keyframes of '{scene.name}' from frame {start} under {label}")
        else:
            ui.info(f"re-simulating {len(poses)} keyframes of '{scene.name}' from frame {start} under {label} "
                    "(the simulator's world, not a world model)")
        fc = forecast(model, scene, start, trajectory, world=world_kind)
        return write_forecast(w, fc, model_dir, req.adherence, req.previews)

    res = publish(ws, "forecast", "forecast", SCHEMA, name, dataclasses.asdict(req), id_fields, inputs, build, force=req.force,
                  noun="forecast")
    report_safety(res.artifact.manifest.get("safety"))
    return {"name": name, "id": ident, "path": str(res.artifact.path), "reused": res.reused,
            **{k: res.artifact.manifest.get(k) for k in ("frames", "trajectory", "world", "adherence_last", "safety")
               if k in res.artifact.manifest}}


def write_forecast(w, fc: Forecast, model_dir: Path | None, adherence: bool, previews: bool) -> dict:
    """The forecast artifact's files (module docstring) into the artifact writer `w`; its summary."""
    scene, start, truth = fc.scene, fc.start, fc.truth
    poses, cmds, observed, future = fc.trajectory.poses, fc.trajectory.commands, fc.observed, fc.labels
    truth_names = {} if truth is None else {inst.id: n for n, inst in truth.table.items()}
    t0 = int(scene.timestamps_us[start])
    world = scene.poses[start][None] @ poses
    stamps = t0 + (fc.times * 1e6).astype(np.int64)
    ctrl = step_controls(np.concatenate([scene.poses[start][None], world]), np.r_[t0, stamps])
    frames = []
    start_instances = scene.frames[start].instance_grid()
    names = {inst.id: name for name, inst in scene.instances.items()}
    with ui.progress("writing forecast", len(future)) as bar:
        for i, (sem, token) in enumerate(zip(future, fc.tokens)):
            folder = Path("gts") / scene.name / token
            if truth is None:
                lidar, camera = visibility_masks(sem, scene.rig)
            else:
                lidar, camera = truth.mask_lidar[i], truth.mask_camera[i]
                w.write_bytes(str(folder / "instances.npz"), instances_npz_bytes(truth.instances[i]))
            w.write_bytes(str(folder / "labels.npz"), labels_npz_bytes(sem, lidar, camera))
            entry = {"token": token, "t_s": float(fc.times[i]), "timestamp_us": int(stamps[i]),
                     "ego_in_start": poses[i].tolist(), "ego_to_global": world[i].tolist(),
                     "control": dict(zip(("dx", "dy", "dyaw", "speed", "yaw_rate"), map(float, ctrl[i]))),
                     "command": COMMANDS[int(cmds[i])]}
            if adherence:
                recovered, share = register_static(sem, observed[-1], around=poses[i])
                terr, yerr = motion_error(recovered, poses[i])
                entry["recovered_ego_in_start"] = recovered.tolist()
                entry["adherence"] = {"translation_m": terr, "yaw_deg": math.degrees(yerr), "matched_share": share}
            # The ego box where the trajectory puts it: in the observed start frame (what was there at
            # t = 0, instances named) and at the centre of the forecast frame.
            entry["safety"] = {"observed": ego_safety(observed[-1], poses[i], start_instances, names),
                               "predicted": ego_safety(sem, np.eye(4)) if truth is None else
                               ego_safety(sem, np.eye(4), truth.instances[i], truth_names)}
            frames.append(entry)
            bar.advance()
    safety = summarise_safety([f["safety"] for f in frames])
    w.write_json("frames.json", {"scene": scene.name, "dataset": scene.dataset.name, "start_frame": start,
                                 "start_token": scene.frames[start].token, "world": fc.world,
                                 "model": None if model_dir is None else str(model_dir),
                                 "trajectory": fc.trajectory.description, "safety": safety, "frames": frames})
    if previews:
        path = np.concatenate([np.zeros((1, 2)), poses[:, :2, 3]])
        imgs = [preview_frame(observed[-1], path, 0)]
        for i, sem in enumerate(future):
            here = (np.linalg.inv(poses[i])[None] @ np.concatenate([np.eye(4)[None], poses]))[:, :2, 3]
            imgs.append(preview_frame(sem, here, i + 1))
        write_mp4(w.path("preview.mp4"), imgs, 2.0)
    summary = {"scene": scene.name, "frames": len(frames), "trajectory": fc.trajectory.description, "world": fc.world,
               "safety": safety}
    if adherence:
        summary["adherence_last"] = frames[-1]["adherence"]
    return summary

"""`gdrive evaluate occ --counterfactual`: the world model scored off the log.

The log drove one trajectory, so the usual protocol can only score forecasts along it. A synthetic
scene has its simulator behind it: from each start frame, every named route that exists there is
driven in the scene's own simulation (the others react, as `forecast --world simulator`), that run
is voxelised along the route as the truth, and the model forecasts the same route from the logged
past. Scored at 1, 2, 3, 5 and 10 s (both mIoU conventions and geometric IoU) beside copy-last and
ego-warp along the same trajectory.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.synthetic.routes import ROUTES, synthetic_origin
from ..errors import BadInput
from ..metrics.ego_motion import warp_occupancy
from ..metrics.occupancy import confusion_matrix, summarise
from .forecast import forecast, observed_frames, plan_trajectory
from .requests import PAST

CF_HORIZONS = (("1s", 1), ("2s", 3), ("3s", 5), ("5s", 9), ("10s", 19))  # future keyframe index at 2 Hz
CF_STEPS = 20  # keyframes forecast per route: 10 s
START_EVERY = 16  # keyframes between start frames of one scene (8 s)
METHODS = ("forecast", "copy_last", "ego_warp")


def start_frames(num_frames: int) -> list[int]:
    """Start frames of a scene: from the first with 3 past frames, every START_EVERY keyframes."""
    return list(range(PAST, num_frames, START_EVERY))


def _summaries(cms: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {h: summarise(cms[h]) for h, _ in CF_HORIZONS}


def counterfactual_scenes(ds, split: str | None = None) -> list:
    """The dataset's synthetic scenes of this generator (BadInput when there are none)."""
    scenes = [s for s in ds.scenes(split) if synthetic_origin(s) is not None]
    if not scenes:
        raise BadInput(f"--counterfactual: dataset '{ds.name}'{f' split {split}' if split else ''} holds no synthetic "
                       "scene of this generator (the simulator is the truth); prepare held-out ones, e.g. "
                       "`gdrive prepare-occ --source synthetic --seed 1 --name heldout`")
    return scenes


def planned_routes(scenes: list) -> int:
    """How many routes `evaluate_counterfactual` tries at most (driven or found not to exist)."""
    return sum(len(start_frames(s.num_frames)) for s in scenes) * len(ROUTES)


def evaluate_counterfactual(model, scenes: list, device: torch.device, max_routes: int | None = None,
                            advance=None) -> dict:
    """Every named route from every start frame of `scenes` (counterfactual_scenes) until
    `max_routes` are driven; `advance()` after each one tried. Returns {routes, scenes, skipped: [{scene, frame,
    trajectory, reason}], forecast / copy_last / ego_warp: {horizon: metrics}, per_trajectory:
    {name: {routes, <method>: {horizon: metrics}}}}."""
    model.eval().to(device)
    zero = np.zeros((18, 18), np.int64)
    total = {m: {h: zero.copy() for h, _ in CF_HORIZONS} for m in METHODS}
    per_traj: dict[str, dict] = {}
    skipped, routes = [], 0
    tries = [(scene, start, move) for scene in scenes for start in start_frames(scene.num_frames) for move in ROUTES]
    observed_at = None
    for scene, start, move in tries:
        if max_routes is not None and routes >= max_routes:
            break
        if observed_at != (scene.name, start):  # the logged past, read once per start frame
            observed = observed_frames(scene, start)[0]
            observed_at = (scene.name, start)
        try:
            trajectory = plan_trajectory(scene, start, move, CF_STEPS)
        except BadInput as e:  # no such route from here (the reason names the ones that exist)
            skipped.append({"scene": scene.name, "frame": start, "trajectory": move, "reason": str(e)})
        else:
            # the same trajectory through the simulator (the truth) and through the world model
            truth = forecast(None, scene, start, trajectory, world="simulator").labels
            pred = forecast(model, scene, start, trajectory, device=device).labels
            poses = trajectory.poses
            mine = per_traj.setdefault(move, {"routes": 0, **{m: {h: zero.copy() for h, _ in CF_HORIZONS} for m in METHODS}})
            mine["routes"] += 1
            routes += 1
            for h, f in CF_HORIZONS:
                guesses = {"forecast": pred[f], "copy_last": observed[-1], "ego_warp": warp_occupancy(observed[-1], poses[f])}
                for m, guess in guesses.items():
                    cm = confusion_matrix(guess, truth[f])
                    total[m][h] += cm
                    mine[m][h] += cm
        if advance:
            advance()
    if routes == 0:
        raise BadInput(f"--counterfactual: no named route exists from any start frame of the {len(scenes)} synthetic "
                       f"scenes ({len(skipped)} tried); prepare longer scenes or another seed")
    out = {"routes": routes, "scenes": len(scenes), "horizon_keyframes": CF_STEPS,
           "start_frames": f"{PAST}, then every {START_EVERY} keyframes", "skipped": skipped}
    out.update({m: _summaries(total[m]) for m in METHODS})
    out["per_trajectory"] = {t: {"routes": v["routes"], **{m: _summaries(v[m]) for m in METHODS}} for t, v in per_traj.items()}
    return out


def counterfactual_rows(res: dict) -> list[list[str]]:
    """Table rows: horizon, method, mIoU drop-zero, mIoU unseen-one, IoU."""
    return [[h, m, *(f"{res[m][h][k]:.2f}" for k in ("miou_drop_zero", "miou_unseen_one", "iou"))]
            for h, _ in CF_HORIZONS for m in METHODS]

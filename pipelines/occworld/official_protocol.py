"""The official GenieDrive rollout: `EE_World.forward_sample(latents, img_metas, H, train=False)` in
task_mode 'generate', on gdrive's Forecaster.

Models imported from the released checkpoints were trained under these conventions, so they only
forecast well when rolled out the same way (gdrive-trained models use world_model.rollout):
- the step transform driving step i is inv(E_{t+i+1})·E_{t+i} from the log (`curr_to_future_ego_rt`);
  the predicted pose feeds only the history and the outputs;
- Δxy is a global-frame delta (t_next = t_curr + Δxy, z kept), the rotation composes globally
  (q_next = q_rel ⊗ q_curr), while the observed relative rotation is conj(q_prev) ⊗ q_next;
- 9 history slots: latents 0–4 copy frame t-3, 5–8 are frames t-3..t; motion slots 0–4 hold the
  quaternion [1, 1, 1, 1] (not a rotation), Δxy 0, lcf 0; 5–8 the 4 observe buffers;
- after each step the model's own prediction (latent, Δxy, rotation, ego_lcf_feat) is pushed;
- step i uses command cmd[max(i - 1, 0)];
- the predicted ego_lcf_feat is [w, vx, vy] (the logged one is [vx, vy, w]), its yaw read from the
  wxyz quaternion as if it were xyzw, and its speed the norm over the first two batch rows;
- the observe buffers shift by one slot with the logged step 0 after the call, and are reset
  (quaternion ones, zeros) at a sequence start.
Shapes: latents [B, T, C, 50, 58] (T >= 4, frames t-3..t first); see `official_rollout`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from ..data.controls import command_one_hot
from ..data.scene import KEYFRAME_DT
from .forecaster import rotmat_to_quat

OBSERVED = 4  # frames t-3..t; also the length of the observe buffers
META_FIELDS = {  # field -> (trailing shape, steps offset): [B, H + offset, *shape]
    "curr_to_future_ego_rt": ((4, 4), 0),
    "curr_ego_to_global": ((4, 4), 1),
    "ego_to_global_rotation": ((4,), 1),
    "ego_to_global_translation": ((3,), 1),
    "gt_ego_lcf_feat": ((3,), 0),
    "gt_ego_fut_cmd": ((3,), 0),
}
OBSERVE_FIELDS = {"relative_rotation": 4, "delta_translation": 2, "ego_lcf_feat": 3}


def quaternion_multiply(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Hamilton product q1 ⊗ q2 of [..., 4] wxyz quaternions."""
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


def relative_rotation(q_prev: torch.Tensor, q_next: torch.Tensor) -> torch.Tensor:
    """conj(q_prev) ⊗ q_next, the official observed relative rotation ([..., 4] wxyz)."""
    conj = q_prev * q_prev.new_tensor([1.0, -1.0, -1.0, -1.0])
    return quaternion_multiply(conj, q_next)


def _official_yaw(q: torch.Tensor) -> torch.Tensor:
    """The yaw of the official `quart_to_rpy`, which reads a wxyz quaternion as xyzw."""
    x, y, z, w = q.unbind(-1)
    return torch.atan2(2 * (w * z + x * y), 1 - 2 * (z * z + y * y))


def predicted_ego_feat(q_next: torch.Tensor, t_next: torch.Tensor, q_prev: torch.Tensor,
                       t_prev: torch.Tensor) -> torch.Tensor:
    """The official PoseEncoder.get_ego_feat: [B, 3] = [w, vx, vy] from the predicted pose and the
    previous one (quaternions [B, 4], translations [B, 3]). The speed is the norm of
    `t_next[:2] - t_prev[:2]` over the first two batch rows together, one value for the batch."""
    yaw = _official_yaw(q_next)
    w = (yaw - _official_yaw(q_prev)) / KEYFRAME_DT
    v = torch.linalg.norm(t_next[:2] - t_prev[:2]) / KEYFRAME_DT
    return torch.stack([w, v * torch.cos(yaw + math.pi / 2), v * torch.sin(yaw + math.pi / 2)], -1)


def _tensor(value: Any, name: str, device, dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or numpy array, not {type(value).__name__}")
    return value.to(device=device, dtype=dtype)


def _check(t: torch.Tensor, name: str, shape: tuple) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}")


def official_rollout(wm, latents, metas: Mapping[str, Any], observe: Mapping[str, Any] | None = None) -> dict:
    """The official EE_World.forward_sample(latents, img_metas, H, train=False), task_mode 'generate'.

    wm: a WorldModel (its forecaster needs at least 4 history slots; the official model has 9).
    latents [B, T, C, 50, 58], T >= 4, frames t-3..t first (only those are read).
    metas: the img_meta fields with a batch axis: curr_to_future_ego_rt [B, H, 4, 4],
      curr_ego_to_global [B, H+1, 4, 4] (optional: unused in 'generate' mode),
      ego_to_global_rotation [B, H+1, 4] (wxyz), ego_to_global_translation [B, H+1, 3],
      gt_ego_lcf_feat [B, H, 3], gt_ego_fut_cmd [B, H, 3] (one-hot).
    observe: None at a sequence start (the official reset), else the motion buffers before the call:
      relative_rotation [B, 4, 4], delta_translation [B, 4, 2], ego_lcf_feat [B, 4, 3].
    Returns pred_latents [B, H, C, 50, 58], pred_delta_translations [B, H, 2],
    pred_relative_rotations [B, H, 4] and observe (the buffers after the call, same layout).
    The pose encoder's previous yaw / position are the current pose's at every step.
    """
    f = wm.forecaster
    k = f.cfg.history
    if k < OBSERVED:
        raise ValueError(f"the official rollout needs at least {OBSERVED} history slots; this forecaster has {k}")
    param = next(f.parameters())
    device, dtype = param.device, param.dtype
    lat = _tensor(latents, "latents", device, dtype)
    if lat.dim() != 5 or lat.shape[1] < OBSERVED or tuple(lat.shape[2:]) != tuple(wm.vae_latent_shape):
        raise ValueError(f"latents has shape {tuple(lat.shape)}, expected [B, T >= {OBSERVED}, "
                         f"{', '.join(map(str, wm.vae_latent_shape))}]")
    b = lat.shape[0]
    if "curr_to_future_ego_rt" not in metas:
        raise ValueError(f"metas has no 'curr_to_future_ego_rt'; it needs {', '.join(META_FIELDS)}")
    steps = _tensor(metas["curr_to_future_ego_rt"], "metas['curr_to_future_ego_rt']", device, dtype)
    if steps.dim() != 4 or steps.shape[1] < 1:
        raise ValueError(f"metas['curr_to_future_ego_rt'] has shape {tuple(steps.shape)}, expected [B, H >= 1, 4, 4]")
    horizon = steps.shape[1]
    m = {}
    for name, (shape, offset) in META_FIELDS.items():
        if name not in metas:
            if name == "curr_ego_to_global":
                continue
            raise ValueError(f"metas has no '{name}'; it needs {', '.join(META_FIELDS)}")
        m[name] = _tensor(metas[name], f"metas['{name}']", device, dtype)
        _check(m[name], f"metas['{name}']", (b, horizon + offset, *shape))
    if observe is None:
        buffers = {"relative_rotation": lat.new_ones(b, OBSERVED, 4),
                   "delta_translation": lat.new_zeros(b, OBSERVED, 2),
                   "ego_lcf_feat": lat.new_zeros(b, OBSERVED, 3)}
    else:
        buffers = {}
        for name, width in OBSERVE_FIELDS.items():
            if name not in observe:
                raise ValueError(f"observe has no '{name}'; it needs {', '.join(OBSERVE_FIELDS)}")
            buffers[name] = _tensor(observe[name], f"observe['{name}']", device, dtype)
            _check(buffers[name], f"observe['{name}']", (b, OBSERVED, width))

    history = lat[:, :1].repeat(1, k, 1, 1, 1)
    history[:, -OBSERVED:] = lat[:, :OBSERVED]
    rot_hist = lat.new_ones(b, k, 4)
    rot_hist[:, -OBSERVED:] = buffers["relative_rotation"]
    dxy_hist = lat.new_zeros(b, k, 2)
    dxy_hist[:, -OBSERVED:] = buffers["delta_translation"]
    lcf_hist = lat.new_zeros(b, k, 3)
    lcf_hist[:, -OBSERVED:] = buffers["ego_lcf_feat"]
    current = lat[:, OBSERVED - 1]
    q_cur, t_cur = m["ego_to_global_rotation"][:, 0], m["ego_to_global_translation"][:, 0]

    pred_latents, pred_dxy, pred_rot = [], [], []
    with torch.no_grad():
        for i in range(horizon):
            controls = torch.cat([dxy_hist, rot_hist, lcf_hist], -1)
            command = m["gt_ego_fut_cmd"][:, max(i - 1, 0)]
            nxt, pred = f.step(current, history, controls, command, m["curr_to_future_ego_rt"][:, i])
            dxy, q_rel = pred[:, :2], pred[:, 2:]
            pred_latents.append(nxt)
            pred_dxy.append(dxy)
            pred_rot.append(q_rel)
            if i == horizon - 1:
                break
            q_next = quaternion_multiply(q_rel, q_cur)
            t_next = torch.cat([t_cur[:, :2] + dxy, t_cur[:, 2:]], -1)
            lcf = predicted_ego_feat(q_next, t_next, q_cur, t_cur)
            history = torch.cat([history[:, 1:], nxt.unsqueeze(1)], 1)
            dxy_hist = torch.cat([dxy_hist[:, 1:], dxy.unsqueeze(1)], 1)
            rot_hist = torch.cat([rot_hist[:, 1:], q_rel.unsqueeze(1)], 1)
            lcf_hist = torch.cat([lcf_hist[:, 1:], lcf.unsqueeze(1)], 1)
            current, q_cur, t_cur = nxt, q_next, t_next

    rot, trans = m["ego_to_global_rotation"], m["ego_to_global_translation"]
    step0 = {"relative_rotation": relative_rotation(rot[:, 0], rot[:, 1]),
             "delta_translation": trans[:, 1, :2] - trans[:, 0, :2],
             "ego_lcf_feat": m["gt_ego_lcf_feat"][:, 0]}
    after = {name: torch.cat([buf[:, 1:], step0[name].unsqueeze(1)], 1) for name, buf in buffers.items()}
    return {"pred_latents": torch.stack(pred_latents, 1), "pred_delta_translations": torch.stack(pred_dxy, 1),
            "pred_relative_rotations": torch.stack(pred_rot, 1), "observe": after}


# -- the official inputs from a log of ego poses ------------------------------------------------


def logged_ego_feat(q: torch.Tensor, t: torch.Tensor, f: int) -> torch.Tensor:
    """The converter's gt_ego_lcf_feat of frame f, [vx, vy, w] ([3]): from frame f and the one
    before it (the one after when f is the first), with the official quaternion-as-xyzw yaw.
    q [N, 4] wxyz, t [N, 3]."""
    prev, cur = (f - 1, f) if f >= 1 else (f, f + 1)
    yaw = _official_yaw(q[f])
    w = (_official_yaw(q[cur]) - _official_yaw(q[prev])) / KEYFRAME_DT
    v = torch.linalg.norm(t[cur, :2] - t[prev, :2]) / KEYFRAME_DT
    return torch.stack([v * torch.cos(yaw + math.pi / 2), v * torch.sin(yaw + math.pi / 2), w])


def official_inputs(poses, current: int, commands, known_from: int = 0) -> tuple[dict, dict]:
    """The img_meta fields and the observe buffers the official evaluation would hold for one
    window, from consecutive logged poses.

    poses [N, 4, 4] ego->global of consecutive keyframes (float64 preferred), frame `current` is t,
    and t + H must be inside; commands [H, 3] one-hot per future step. `known_from`: the first frame
    whose outgoing step the observe buffers can hold (the official buffers are reset at a sequence
    start and then take one logged step per walked window: with every window of a scene walked in
    order from its first one at frame c0, known_from = c0). Returns (metas, observe) with a batch
    axis of 1, float32, in the layout of `official_rollout`.
    """
    poses = torch.as_tensor(np.asarray(poses), dtype=torch.float64)
    commands = torch.as_tensor(np.asarray(commands), dtype=torch.float32)
    horizon = commands.shape[0]
    if current + horizon >= poses.shape[0] or current < 0:
        raise ValueError(f"poses holds {poses.shape[0]} frames; frame {current} + {horizon} steps is outside")
    q, t = rotmat_to_quat(poses[:, :3, :3]), poses[:, :3, 3]
    e = poses[current:current + horizon + 1]
    metas = {
        "curr_to_future_ego_rt": torch.linalg.inv(e[1:]) @ e[:-1],
        "curr_ego_to_global": e,
        "ego_to_global_rotation": q[current:current + horizon + 1],
        "ego_to_global_translation": t[current:current + horizon + 1],
        "gt_ego_lcf_feat": torch.stack([logged_ego_feat(q, t, current + i) for i in range(horizon)]),
        "gt_ego_fut_cmd": commands,
    }
    slots = {"relative_rotation": [], "delta_translation": [], "ego_lcf_feat": []}
    for s in range(current - OBSERVED, current):
        known = s >= max(known_from, 0)
        slots["relative_rotation"].append(relative_rotation(q[s], q[s + 1]) if known else q.new_ones(4))
        slots["delta_translation"].append(t[s + 1, :2] - t[s, :2] if known else t.new_zeros(2))
        slots["ego_lcf_feat"].append(logged_ego_feat(q, t, s) if known else t.new_zeros(3))
    observe = {k: torch.stack(v) for k, v in slots.items()}
    return ({k: v.float()[None] for k, v in metas.items()}, {k: v.float()[None] for k, v in observe.items()})


def official_forecast(wm, latents: torch.Tensor, steps: torch.Tensor, commands: torch.Tensor) -> torch.Tensor:
    """`world_model.forecast_latents` for a model of protocol "geniedrive": the official rollout on a
    window given as gdrive hands it over.

    latents [B, P+1, C, 50, 58] observed (last = current); steps [B, P+F, 4, 4] gdrive's ego steps
    inv(P_i)·P_{i+1}; commands [B, F, 3]. The poses are chained from the steps with the current
    frame as the global frame; fewer than 4 observed frames are padded with the oldest (as the
    official loader clamps them), and the observe buffers hold the steps the window knows.
    Returns the forecast latents [B, F, C, 50, 58].
    """
    b, n = latents.shape[:2]
    pad = max(OBSERVED - n, 0)
    if pad:
        latents = torch.cat([latents[:, :1].expand(b, pad, *latents.shape[2:]), latents], 1)
        eye = torch.eye(4, dtype=steps.dtype, device=steps.device).expand(b, pad, 4, 4)
        steps = torch.cat([eye, steps], 1)
    current = latents.shape[1] - 1
    chained = [torch.eye(4, dtype=torch.float64).expand(b, 4, 4)]
    for i in range(steps.shape[1]):
        chained.append(chained[-1] @ steps[:, i].double().cpu())
    poses = torch.stack(chained, 1)
    poses = torch.linalg.inv(poses[:, current:current + 1]) @ poses  # the current frame is the global one
    inputs = [official_inputs(poses[i], current, commands[i].cpu(), known_from=pad) for i in range(b)]
    metas = {k: torch.cat([m[k] for m, _ in inputs]) for k in inputs[0][0]}
    observe = {k: torch.cat([o[k] for _, o in inputs]) for k in inputs[0][1]}
    return official_rollout(wm, latents[:, -OBSERVED:], metas, observe)["pred_latents"]


def window_inputs(windows, i: int) -> tuple[dict, dict]:
    """`official_inputs` for window i of a ForecastWindows, from the logged global poses, as the
    official evaluation holds them: scenes walked in order from their first complete window (the
    sequence start, where the observe buffers are reset), one logged step taken in per window."""
    cache = windows.cache
    c = int(windows.centres[i])
    si = int(cache.frame_scene[c])
    a, b = int(cache.scene_start[si]), int(cache.scene_start[si + 1])
    lo = max(a, c - OBSERVED - 1)
    idx = np.clip(np.arange(lo, c + windows.future + 1), a, b - 1)
    commands = command_one_hot(cache.commands[np.clip(np.arange(c, c + windows.future), a, b - 1)])
    return official_inputs(cache.ego_to_global[idx], c - lo, commands, known_from=a + windows.past - lo)

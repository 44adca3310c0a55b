"""The occupancy forecasting protocol (GenieDrive): 3 past + current + 6 future keyframes, fully
autoregressive with the logged step transforms and commands (for a model of protocol
"geniedrive", the official rollout on the logged global poses, official_protocol.py), per-horizon confusion matrices
(1 s / 2 s / 3 s = future indices 1 / 3 / 5), reconstruction of the current frame, both mIoU
conventions; beside the model two baselines (copy the current frame; warp it by the logged ego
motion) and control adherence (ego motion recovered from each forecast frame against the
commanded one).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data.windows import ForecastWindows
from ..metrics.ego_motion import motion_error, register_static, warp_occupancy
from ..metrics.occupancy import confusion_matrix, summarise
from .requests import FUTURE, PAST
from .observation_fusion import accumulated_poses
from .official_protocol import official_rollout, window_inputs
from .world_model import WorldModel, forecast_latents, window_steps

HORIZONS = (("1s", 1), ("2s", 3), ("3s", 5))
TIMED_SCOPE = ("batch 1; encode the 4 observed frames + 6 autoregressive steps (+ decode of the 6 "
               "forecasts for fps_forecast); device synchronised before each clock read")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _per_horizon(cms: list[np.ndarray]) -> dict[str, dict[str, float]]:
    out = {h: summarise(cms[i]) for h, i in HORIZONS}
    out["avg"] = {k: float(np.mean([out[h][k] for h, _ in HORIZONS])) for k in out["1s"]}
    return out


@torch.no_grad()
def forecast_window(model: WorldModel, item: dict, device: torch.device,
                    official: tuple[dict, dict] | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Forecast one window (with `official` = (metas, observe), the official rollout on them).
    Returns (forecast labels [F, X, Y, Z], recon of the current frame [X, Y, Z], seconds {encode,
    predict, decode})."""
    occ = item["occ"].to(device).long()
    rel = item["rel_poses"].to(device)[None]
    cmds = item["commands"].to(device)[None]
    _sync(device)
    t0 = time.perf_counter()
    lat = model.vae.encode(occ[:PAST + 1], sample=False)[None]
    _sync(device)
    t1 = time.perf_counter()
    if official is not None:
        pred_lat = official_rollout(model, lat, *official)["pred_latents"]
        moved = accumulated_poses(window_steps(rel)[:, PAST:])
    else:
        pred_lat, moved = forecast_latents(model, lat, window_steps(rel), cmds[:, PAST:-1])
    _sync(device)
    t2 = time.perf_counter()
    pred = torch.stack([model.decode_future(pred_lat[:, i], occ[PAST][None], moved[:, i]).argmax(1)[0]
                        for i in range(pred_lat.shape[1])])
    _sync(device)
    t3 = time.perf_counter()
    recon = model.vae.decode(lat[:, -1]).argmax(1)[0]
    return pred, recon, {"encode": t1 - t0, "predict": t2 - t1, "decode": t3 - t2}


def evaluate_windows(model: WorldModel, windows: ForecastWindows, indices, device: torch.device,
                     baselines: bool = True, adherence: bool = True, advance=None) -> dict:
    """Run the protocol over `indices` of `windows` (complete windows: past 3, future 6)."""
    model.eval().to(device)
    z = np.zeros((18, 18), np.int64)
    cm = {"recon": z.copy(), "forecast": [z.copy() for _ in range(FUTURE)],
          "copy_last": [z.copy() for _ in range(FUTURE)], "ego_warp": [z.copy() for _ in range(FUTURE)]}
    errors = {h: [] for h, _ in HORIZONS}
    secs = {"encode": 0.0, "predict": 0.0, "decode": 0.0}
    indices = list(indices)
    for n, i in enumerate(indices):
        item = windows[int(i)]
        official = window_inputs(windows, int(i)) if model.cfg.protocol == "geniedrive" else None
        pred, recon, t = forecast_window(model, item, device, official)
        if n > 0 or len(indices) == 1:  # the first window warms up kernels and caches
            for k in secs:
                secs[k] += t[k]
        occ = item["occ"].numpy()
        current = occ[PAST]
        cm["recon"] += confusion_matrix(recon.cpu(), current)
        rel = item["rel_poses"].numpy().astype(np.float64)
        pred = pred.cpu().numpy()
        for f in range(FUTURE):
            gt = occ[PAST + 1 + f]
            cm["forecast"][f] += confusion_matrix(pred[f], gt)
            if baselines:
                cm["copy_last"][f] += confusion_matrix(current, gt)
                cm["ego_warp"][f] += confusion_matrix(warp_occupancy(current, rel[PAST + 1 + f]), gt)
        if adherence:
            for h, f in HORIZONS:
                recovered, _ = register_static(pred[f], current, around=rel[PAST + 1 + f])
                errors[h].append(motion_error(recovered, rel[PAST + 1 + f]))
        if advance:
            advance()
    timed = max(len(indices) - 1, 1)
    enc, prd, dec = (secs[k] / timed for k in ("encode", "predict", "decode"))
    out = {"windows": len(indices), "recon": summarise(cm["recon"]), "forecast": _per_horizon(cm["forecast"]),
           "timing": {"encode_s": enc, "predict_s_per_step": prd / FUTURE, "decode_s_per_frame": dec / FUTURE,
                      "fps_forecast": FUTURE / max(enc + prd + dec, 1e-9), "fps_peer_scope": FUTURE / max(enc + prd, 1e-9),
                      "scope": TIMED_SCOPE, "device": str(device)}}
    if baselines:
        out["copy_last"] = _per_horizon(cm["copy_last"])
        out["ego_warp"] = _per_horizon(cm["ego_warp"])
    if adherence and indices:
        out["adherence"] = {h: {"translation_m": float(np.mean([e[0] for e in errors[h]])),
                                "yaw_deg": float(np.degrees(np.mean([e[1] for e in errors[h]])))} for h, _ in HORIZONS}
    return out


def validation_metrics(model: WorldModel, windows: ForecastWindows, device: torch.device, count: int = 4) -> dict[str, float]:
    """A quick validation pass for training: forecast mIoU at 1/2/3 s and recon on a few windows."""
    if len(windows) == 0:
        return {}
    idx = np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int)
    res = evaluate_windows(model, windows, idx, device, baselines=False, adherence=False)
    out = {"recon_miou_drop_zero": res["recon"]["miou_drop_zero"]}
    for h, _ in HORIZONS:
        out[f"forecast_{h}_miou_drop_zero"] = res["forecast"][h]["miou_drop_zero"]
    out["forecast_avg_miou_drop_zero"] = res["forecast"]["avg"]["miou_drop_zero"]
    return out

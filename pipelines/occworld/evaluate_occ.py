"""`gdrive evaluate occ`: the forecasting protocol over a dataset, written as a JSON report."""

from __future__ import annotations


import numpy as np

from ..console import ui
from ..data.cache import open_cache
from ..data.dataset import OccDataset
from ..data.windows import ForecastWindows
from ..errors import BadInput
from ..runtime.distributed import resolve_device
from ..data.synthetic.routes import ROUTES
from .evaluate import HORIZONS, evaluate_windows
from .evaluate_counterfactual import (CF_STEPS, START_EVERY, counterfactual_scenes, evaluate_counterfactual,
                                      planned_routes)
from .forecast import DEMO_MODEL
from .requests import FUTURE, PAST, EvaluateOccRequest
from .params import parameter_report
from .world_model import open_world_model
from ..store import Workspace


CONVENTIONS = {"miou_drop_zero": "GenieDrive/OccWorld: mean over classes 0..16 of IoU, classes with IoU = 0 dropped",
               "miou_unseen_one": "classes absent from both prediction and ground truth count as 1, zero IoU kept"}
COUNTERFACTUAL_PROTOCOL = (
    f"every named route ({', '.join(ROUTES)}) that exists from frame {PAST} and every {START_EVERY} keyframes after it, "
    f"{CF_STEPS} keyframes (10 s): truth = the scene re-simulated along the route (the others react), forecast = the "
    "model from the logged past; copy-last and ego-warp along the same trajectory")
PROTOCOL_ROLLOUT = {
    "gdrive": "gdrive's rollout (ego-frame steps, the window's logged past motion in the history)",
    "geniedrive": "the official EE_World.forward_sample on the logged global poses; batch 1, scenes walked in order, "
                  "motion buffers carried across a scene's windows and reset at its first complete window",
}


def run_evaluate_occ(ws: Workspace, req: EvaluateOccRequest) -> dict:
    if req.max_windows is not None and req.max_windows <= 0:
        raise BadInput(f"--max-windows {req.max_windows}: must be a positive number")
    if req.max_routes is not None and req.max_routes <= 0:
        raise BadInput(f"--max-routes {req.max_routes}: must be a positive number")
    if req.counterfactual and req.max_windows is not None:
        raise BadInput("--max-windows: the counterfactual protocol drives routes, not logged windows; use --max-routes N")
    if req.max_routes is not None and not req.counterfactual:
        raise BadInput("--max-routes: only with --counterfactual (the logged protocol takes --max-windows)")
    ds = OccDataset.open(req.dataset, ws.root)
    model, folder = open_world_model(req.model or str(DEMO_MODEL), ws.root)
    if req.counterfactual:
        return _run_counterfactual(ds, model, folder, req)
    windows = ForecastWindows(open_cache(ds), PAST, FUTURE, split=req.split, drop_partial=True)
    if len(windows) == 0:
        raise BadInput(f"--dataset '{req.dataset}': no complete windows (3 past + 6 future keyframes); "
                       "prepare scenes with at least 10 frames")
    n = len(windows) if req.max_windows is None else min(req.max_windows, len(windows))
    idx = np.linspace(0, len(windows) - 1, n).round().astype(int)
    device = resolve_device(req.device)
    with ui.progress("evaluating forecasts", n) as bar:
        res = evaluate_windows(model, windows, idx, device, adherence=req.adherence, advance=bar.advance)
    rep = parameter_report(model.cfg)
    res["parameters"] = {"vae": rep["vae"]["total"], "forecaster": rep["forecaster"]["total"],
                         "total": rep["total"]["parameters"]}
    res.update({"dataset": ds.name, "dataset_id": ds.id, "model": str(folder), "split": req.split or "all",
                "protocol": {"name": model.cfg.protocol, "rollout": PROTOCOL_ROLLOUT[model.cfg.protocol]},
                "conventions": CONVENTIONS})
    return res


def _run_counterfactual(ds: OccDataset, model, folder, req: EvaluateOccRequest) -> dict:
    device = resolve_device(req.device)
    scenes = counterfactual_scenes(ds, req.split)
    count = planned_routes(scenes)
    with ui.progress("driving named routes in the simulator and forecasting them", count) as bar:
        res = evaluate_counterfactual(model, scenes, device, req.max_routes, advance=bar.advance)
    res.update({"protocol": {"name": "counterfactual", "rollout": COUNTERFACTUAL_PROTOCOL}, "dataset": ds.name,
                "dataset_id": ds.id, "model": str(folder), "split": req.split or "all", "conventions": CONVENTIONS})
    return res


def report_rows(res: dict) -> list[list[str]]:
    rows = [["reconstruction (0 s)", "model", *(f"{res['recon'][k]:.2f}" for k in ("miou_drop_zero", "miou_unseen_one", "iou"))]]
    for method in ("forecast", "copy_last", "ego_warp"):
        if method not in res:
            continue
        for h in [h for h, _ in HORIZONS] + ["avg"]:
            r = res[method][h]
            rows.append([h, method, f"{r['miou_drop_zero']:.2f}", f"{r['miou_unseen_one']:.2f}", f"{r['iou']:.2f}"])
    return rows

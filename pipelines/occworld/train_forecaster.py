"""The `train-forecaster` stages: `predict` (VAE frozen, latent MSE) and `e2e` (VAE unfrozen,
CE + Lovász on decoded futures), both with trajectory and rotation losses and scheduled sampling;
`fuse` trains only the observation-fusion head (everything else frozen) on the decoded futures.

`--init` names the model to start from: a `train-vae` model for `predict` (its VAE; a fresh
forecaster), a `predict` (or `e2e`) model for `e2e` and `fuse` (both parts; `fuse` adds the
fusion head when the init model has none). The published model holds
vae.safetensors and forecaster.safetensors (layout in runtime/model_artifact.py).
"""

from __future__ import annotations

import dataclasses

from ..data.cache import open_cache
from ..data.dataset import OccDataset
from ..data.windows import ForecastWindows
from ..errors import BadInput
from ..limits import check_int
from .configs import check_motion_prior
from .evaluate import validation_metrics
from .forecast_stage import forecaster_stage
from .requests import FUTURE, MAX_FUTURE, PAST, STAGES, TrainForecasterRequest
from ..runtime.model_artifact import TrainingJob, run_training
from .world_model import WorldModel, open_world_model
from ..store import Workspace
from ..store.artifacts import read_manifest


def run_train_forecaster(ws: Workspace, req: TrainForecasterRequest) -> dict:
    if req.stage not in STAGES:
        raise BadInput(f"--stage '{req.stage}': unknown stage; choose one of {', '.join(STAGES)}")
    settings = req.settings(weight_decay=req.weight_decay, grad_clip=req.grad_clip, warmup=req.warmup)
    check_int(req.val_windows, "--val-windows", 1, 100_000)
    check_int(req.future, "--future", 1, MAX_FUTURE)
    if req.stage == "fuse" and req.future != FUTURE:
        raise BadInput(f"--future {req.future}: the fuse stage fits the fusion head on {FUTURE}-keyframe windows; "
                       "drop the flag (it sets the predict and e2e horizon)")
    ds = OccDataset.open(req.dataset, ws.root)
    init, init_dir = open_world_model(req.init, ws.root, "--init", need_forecaster=req.stage != "predict")
    init_manifest = read_manifest(init_dir) or {}
    cfg = init.cfg
    if cfg.protocol != "gdrive":
        if req.stage != "predict":
            raise BadInput(f"--init {req.init}: an imported model of protocol '{cfg.protocol}' (the official rollout); the "
                           f"{req.stage} stage trains under gdrive's rollout, which would change what its forecaster sees. "
                           "Use it with forecast / evaluate occ / generate, or train a fresh forecaster on its VAE "
                           "with --stage predict")
        cfg = dataclasses.replace(cfg, protocol="gdrive")  # a fresh forecaster on the imported VAE
    if req.motion_prior is not None:
        check_motion_prior(req.motion_prior)
        if req.stage != "predict" and req.motion_prior != cfg.forecaster.motion_prior:
            raise BadInput(f"--motion-prior {req.motion_prior}: the {req.stage} stage continues the --init forecaster, whose "
                           f"prior is '{cfg.forecaster.motion_prior}'; drop the flag or train a new predict model")
        cfg = dataclasses.replace(cfg, forecaster=dataclasses.replace(cfg.forecaster, motion_prior=req.motion_prior))
    if req.stage == "e2e":
        # The end-to-end model's VAE trains without dropout (official vae_e2e).
        cfg = dataclasses.replace(cfg, vae=dataclasses.replace(cfg.vae, dropout=0.0))
    if req.stage == "fuse":
        cfg = dataclasses.replace(cfg, forecaster=dataclasses.replace(cfg.forecaster, observation_fusion=True))
    inputs = {"dataset": ds.id, "init": init_manifest.get("id", str(init_dir))}

    def build_stage(device):
        model = WorldModel(cfg)
        model.vae.load_state_dict(init.vae.state_dict())
        if req.stage != "predict":
            # An init model without a fusion head leaves the new head at its start (the decoded labels).
            missing, unexpected = model.forecaster.load_state_dict(init.forecaster.state_dict(), strict=False)
            assert not unexpected and all(k.startswith("obs_fusion.") for k in missing), (missing, unexpected)
        cache = open_cache(ds)
        split = "val" if "val" in cache.scene_splits else None
        val = ForecastWindows(cache, PAST, FUTURE, split=split, drop_partial=True)
        stage = forecaster_stage(req.stage, model, cache, device, req.steps, req.seed,
                                 validate=lambda obj: validation_metrics(obj.model, val, device, req.val_windows),
                                 future=req.future)
        return stage, lambda trained: {"vae": trained.model.vae, "forecaster": trained.model.forecaster}

    job = TrainingJob("train-forecaster", req.stage, cfg, settings, inputs, dataclasses.asdict(req), req.name,
                      req.resume, req.force, req.device, build_stage)
    return run_training(ws, job)

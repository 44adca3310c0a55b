"""The `train-vae` stage: train the tri-plane VAE on a dataset and publish a model artifact
(models/<name>/ with vae.safetensors; layout in runtime/model_artifact.py)."""

from __future__ import annotations

import dataclasses

from ..console import ui
from ..data.cache import open_cache
from ..data.dataset import OccDataset
from .configs import get_config
from ..runtime.model_artifact import TrainingJob, run_training
from .requests import TrainVAERequest
from .vae_stage import vae_stage
from ..store import Workspace


def run_train_vae(ws: Workspace, req: TrainVAERequest) -> dict:
    settings = req.settings()
    cfg = get_config(req.model_config)
    ds = OccDataset.open(req.dataset, ws.root)

    def build_stage(device):
        if cfg.name == "paper" and device.type == "cpu":  # the default: said, since it is the GPU size
            ui.warn("training the 'paper' VAE (the official sizes, made for GPUs) on the CPU; for CPU work pass "
                    "--model-config small (the demo weights' size)")
        stage = vae_stage(cfg.vae, open_cache(ds), device)
        return stage, lambda trained: {"vae": trained}

    job = TrainingJob("train-vae", "vae", cfg, settings, {"dataset": ds.id}, dataclasses.asdict(req), req.name,
                      req.resume, req.force, req.device, build_stage)
    return run_training(ws, job)

"""The `train-vae` stage: train the tri-plane VAE on a dataset and publish a model artifact
(models/<name>/ with vae.safetensors; layout in model_artifact.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipelines.data.cache import open_cache
from pipelines.data.dataset import OccDataset
from pipelines.occworld.configs import get_config
from pipelines.occworld.model_artifact import TrainingJob, check_settings, run_training
from pipelines.occworld.trainer import TrainSettings
from pipelines.occworld.vae_stage import vae_stage
from pipelines.store import Workspace


@dataclass
class TrainVAERequest:
    dataset: str = "latest"
    model_config: str = "paper"
    name: str | None = None
    steps: int = 1000
    batch_size: int = 2
    lr: float = 1e-4
    val_every: int = 0
    ckpt_every: int = 100
    ema: bool = True
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    force: bool = False


def run_train_vae(ws: Workspace, req: TrainVAERequest) -> dict:
    check_settings(req.steps, req.batch_size, req.lr)
    cfg = get_config(req.model_config)
    ds = OccDataset.open(req.dataset, ws.root)
    settings = TrainSettings(steps=req.steps, batch_size=req.batch_size, lr=req.lr, ema=req.ema,
                             val_every=req.val_every, ckpt_every=req.ckpt_every, seed=req.seed)

    def build_stage(device):
        stage = vae_stage(cfg.vae, open_cache(ds), device)
        return stage, lambda trained: {"vae": trained}

    job = TrainingJob("train-vae", "vae", cfg, settings, {"dataset": ds.id}, dataclasses.asdict(req), req.name,
                      req.resume, req.force, req.device, build_stage)
    return run_training(ws, job)

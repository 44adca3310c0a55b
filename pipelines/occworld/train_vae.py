"""The `train-vae` stage: train the tri-plane VAE on a dataset and publish a model artifact.

models/<name>/
    manifest.json          id = (stage, schema, model config, train settings, dataset id)
    config.json            the world-model config (rebuilds the model)
    vae.safetensors        weights (the EMA weights when training keeps an EMA)
    metrics.json           reconstruction mIoU (both conventions) and IoU on validation frames
runs/<name>/last/          the resumable run state (checkpoint), kept after publishing
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from safetensors.torch import save_file

from pipelines.console import ui
from pipelines.data.cache import open_cache
from pipelines.data.dataset import OccDataset
from pipelines.errors import BadInput
from pipelines.occworld.configs import get_config
from pipelines.occworld.distributed import init_distributed, resolve_device, shutdown_distributed
from pipelines.occworld.trainer import TrainSettings, train
from pipelines.occworld.vae_stage import vae_stage
from pipelines.store import Workspace, artifact_id, publish
from pipelines.store.artifacts import reusable_artifact

MODEL_SCHEMA = 1


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
    for flag, v in (("--steps", req.steps), ("--batch-size", req.batch_size)):
        if v <= 0:
            raise BadInput(f"{flag} {v}: must be a positive number")
    if req.lr <= 0:
        raise BadInput(f"--lr {req.lr}: must be positive")
    cfg = get_config(req.model_config)
    ds = OccDataset.open(req.dataset, ws.root)
    settings = TrainSettings(steps=req.steps, batch_size=req.batch_size, lr=req.lr, ema=req.ema,
                             val_every=req.val_every, ckpt_every=req.ckpt_every, seed=req.seed)
    id_fields = {"model": cfg.to_dict(), "train": dataclasses.asdict(settings)}
    inputs = {"dataset": ds.id}
    ident = artifact_id("train-vae", MODEL_SCHEMA, id_fields, inputs)
    name = req.name or f"vae-{cfg.name}-{ident[:6]}"
    run_dir = ws.root / "runs" / name
    if req.resume and not (run_dir / "last" / "state.json").is_file():
        raise BadInput(f"--resume: no run state in {run_dir / 'last'}; start without --resume")
    target = ws.kind_dir("model") / name
    reuse = reusable_artifact(ws, "model", name, ident, req.force)  # before training, not after
    if reuse is not None:
        ui.info(f"reusing model '{name}' (id {ident}): same dataset, config and settings; pass --force to retrain")
        return {"name": name, "id": ident, "path": str(target), "reused": True, "metrics": reuse.manifest.get("metrics", {})}
    ws.ensure_writable()
    device = resolve_device(req.device)
    info = init_distributed(device)
    if info.world > 1 and device.type == "cuda":
        device = torch.device(f"cuda:{info.local_rank}")
    cache = open_cache(ds)
    torch.manual_seed(req.seed)  # model initialisation
    stage = vae_stage(cfg.vae, cache, device)
    config = {"stage": "vae", **cfg.to_dict()}
    try:
        out = train(stage, settings, run_dir, config, device, info, resume=req.resume)
    finally:
        shutdown_distributed(info)
    result = {"name": name, "id": ident, "path": str(target), "reused": False, "metrics": out["metrics"],
              "steps": out["step"], "last_loss": out["last_loss"], "seconds": round(out["seconds"], 2)}
    if not info.main:
        return result
    weights = (out["ema"] if out["ema"] is not None else stage.model).state_dict()

    def build(w) -> dict:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(w.path("vae.safetensors")))
        w.write_json("config.json", cfg.to_dict())
        w.write_json("metrics.json", out["metrics"])
        return {"metrics": out["metrics"], "losses": {"first": out["losses"][0] if out["losses"] else None,
                                                      "last": out["last_loss"]}, "run": str(run_dir)}

    publish(ws, "model", "train-vae", MODEL_SCHEMA, name, dataclasses.asdict(req), id_fields, inputs, build, force=req.force)
    ui.info(f"wrote model '{name}' (id {ident}) to {target}")
    return result

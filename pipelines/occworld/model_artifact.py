"""Training a stage and publishing its model artifact: one routine for `train-vae`,
`train-forecaster` and `finetune-video`, so naming, reuse, resume, DDP and publishing follow one rule.

models/<name>/
    manifest.json          id = (stage, schema, model config, train settings, input ids)
    config.json            the world-model config (rebuilds the model)
    <part>.safetensors     weights per part (vae, forecaster); the EMA weights when training keeps one
    metrics.json           validation metrics
runs/<name>/last/          the resumable run state (checkpoint), kept after publishing

A job may publish another kind (`video-model`) in its own layout through `TrainingJob.write`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from safetensors.torch import save_file

from pipelines.console import ui
from pipelines.errors import BadInput
from pipelines.occworld.configs import WorldModelConfig
from pipelines.occworld.distributed import init_distributed, resolve_device, shutdown_distributed
from pipelines.occworld.trainer import Stage, TrainSettings, train
from pipelines.store import Workspace, artifact_id, publish
from pipelines.store.artifacts import ArtifactWriter, reusable_artifact

MODEL_SCHEMA = 1


class ModelConfig(Protocol):
    """What the routine needs of a model config (WorldModelConfig, the video VideoConfig)."""

    name: str

    def to_dict(self) -> dict: ...


@dataclass
class TrainRequest:
    """The options every training command shares; stages subclass it (and may change defaults)."""

    dataset: str = "latest"
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

    def settings(self, **extra) -> TrainSettings:
        """Checked loop settings; `extra` carries stage-specific ones (weight decay, clip, warm-up)."""
        for flag, v in (("--steps", self.steps), ("--batch-size", self.batch_size)):
            if v <= 0:
                raise BadInput(f"{flag} {v}: must be a positive number")
        if not self.lr > 0:
            raise BadInput(f"--lr {self.lr}: must be positive")
        return TrainSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr, ema=self.ema,
                             val_every=self.val_every, ckpt_every=self.ckpt_every, seed=self.seed, **extra)


@dataclass
class TrainingJob:
    command: str  # the stage name in the manifest, e.g. "train-vae"
    stage: str  # vae | predict | e2e
    cfg: WorldModelConfig | ModelConfig
    settings: TrainSettings
    inputs: dict  # ids of the inputs (dataset, initial model)
    request: dict  # the resolved request, recorded in the manifest
    name: str | None
    resume: bool
    force: bool
    device: str
    # device -> (stage, parts): parts maps a file stem to the module whose weights it holds,
    # taken from the EMA copy of the trained module when there is one.
    build_stage: Callable[[torch.device], tuple[Stage, Callable[[torch.nn.Module], dict[str, torch.nn.Module]]]]
    kind: str = "model"  # the artifact kind published (workspace KINDS)
    # (writer, parts) -> None: write the model in the job's own layout instead of
    # <part>.safetensors + config.json (metrics.json and the manifest are written either way).
    write: Callable[[ArtifactWriter, dict[str, torch.nn.Module]], None] | None = None


def run_training(ws: Workspace, job: TrainingJob) -> dict:
    id_fields = {"stage": job.stage, "model": job.cfg.to_dict(), "train": dataclasses.asdict(job.settings)}
    ident = artifact_id(job.command, MODEL_SCHEMA, id_fields, job.inputs)
    name = job.name or f"{job.stage}-{job.cfg.name}-{ident[:6]}"
    run_dir = ws.root / "runs" / name
    if job.resume and not (run_dir / "last" / "state.json").is_file():
        raise BadInput(f"--resume: no run state in {run_dir / 'last'}; start without --resume")
    target = ws.kind_dir(job.kind) / name
    reuse = reusable_artifact(ws, job.kind, name, ident, job.force)  # before training, not after
    if reuse is not None:
        ui.info(f"reusing {job.kind} '{name}' (id {ident}): same inputs, config and settings; pass --force to retrain")
        return {"kind": job.kind, "name": name, "id": ident, "path": str(target), "reused": True,
                "metrics": reuse.manifest.get("metrics", {})}
    ws.ensure_writable()
    device = resolve_device(job.device)
    info = init_distributed(device)
    if info.world > 1 and device.type == "cuda":
        device = torch.device(f"cuda:{info.local_rank}")
    torch.manual_seed(job.settings.seed)  # model initialisation
    stage, parts_of = job.build_stage(device)
    config = {"stage": job.stage, **job.cfg.to_dict()}
    try:
        out = train(stage, job.settings, run_dir, config, device, info, resume=job.resume)
    finally:
        shutdown_distributed(info)
    result = {"kind": job.kind, "name": name, "id": ident, "path": str(target), "reused": False, "metrics": out["metrics"],
              "steps": out["step"], "last_loss": out["last_loss"], "seconds": round(out["seconds"], 2)}
    if not info.main:
        return result
    parts = parts_of(out["ema"] if out["ema"] is not None else stage.model)

    def build(w) -> dict:
        if job.write is not None:
            job.write(w, parts)
        else:
            for stem, module in parts.items():
                state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
                save_file(state, str(w.path(f"{stem}.safetensors")))
            w.write_json("config.json", job.cfg.to_dict())
        w.write_json("metrics.json", out["metrics"])
        return {"metrics": out["metrics"], "parts": sorted(parts), "run": str(run_dir),
                "losses": {"first": out["losses"][0] if out["losses"] else None, "last": out["last_loss"]}}

    publish(ws, job.kind, job.command, MODEL_SCHEMA, name, job.request, id_fields, job.inputs, build, force=job.force)
    ui.info(f"wrote {job.kind} '{name}' (id {ident}) to {target}")
    return result

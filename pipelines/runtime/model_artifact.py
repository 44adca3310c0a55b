"""Training a stage and publishing its model artifact: one routine for `train-vae`,
`train-forecaster` and `finetune-video`, so naming, reuse, resume, DDP and publishing follow one rule.

models/<name>/
    manifest.json          id = (stage, schema, model config, train settings, input ids)
    config.json            the model config (rebuilds the model)
    <part>.safetensors     weights per part (vae, forecaster); the EMA weights when training keeps one
    metrics.json           validation metrics
runs/<name>/last/          the resumable run state (checkpoint), kept after publishing
runs/<name>/.lock          held by the run training <name> (pid and id inside)

One run at a time trains a name: a second run of the same configuration waits for the first and
reuses its model; one of another configuration exits 2 at once. A rerun over the run state of an
unfinished run (a killed one) exits 2 unless it says what to do with it: `--resume` continues it,
`--force` starts over (discarding it).

A job may publish another kind (`video-model`) in its own layout through `TrainingJob.write`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch

from ..console import ui
from ..errors import BadInput
from .checkpoint import save_weights
from .distributed import init_distributed, resolve_device, shutdown_distributed
from .train_request import TrainSettings
from .trainer import Stage, train
from ..store import Workspace, artifact_id, publish
from ..store.artifacts import ArtifactWriter, recover_dir, reusable_artifact, say_reused
from ..store.names import check_name, default_name

MODEL_SCHEMA = 1
RUN_LOCK = ".lock"


class ModelConfig(Protocol):
    """What the routine needs of a model config (WorldModelConfig, the video VideoConfig)."""

    name: str

    def to_dict(self) -> dict: ...


@dataclass
class TrainingJob:
    command: str  # the stage name in the manifest, e.g. "train-vae"
    stage: str  # vae | predict | e2e
    cfg: ModelConfig  # the world model's WorldModelConfig, the video VideoConfig
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
    name = check_name(job.name) if job.name else default_name(f"{job.stage}-{job.cfg.name}", ident)
    run_dir = ws.root / "runs" / name
    if job.resume and not (run_dir / "last" / "state.json").is_file():
        raise BadInput(f"--resume: no run state in {run_dir / 'last'}; start without --resume")
    target = ws.kind_dir(job.kind) / name
    reuse = _reused(ws, job, name, ident)  # before training, not after
    if reuse is not None:
        return reuse
    ws.ensure_writable()
    main = int(os.environ.get("RANK", "0")) == 0  # torchrun: rank 0 owns the run folder
    with run_lock(run_dir, name, ident) if main else contextlib.nullcontext():
        reuse = _reused(ws, job, name, ident)  # published by the run this one waited for
        if reuse is not None:
            return reuse
        if main:
            check_run_state(run_dir, name, job.resume, job.force)
        return _train_and_publish(ws, job, name, ident, id_fields, run_dir, target)


def _reused(ws: Workspace, job: TrainingJob, name: str, ident: str) -> dict | None:
    reuse = reusable_artifact(ws, job.kind, name, ident, job.force)
    if reuse is None:
        return None
    say_reused(job.kind, name, ident)
    return {"kind": job.kind, "name": name, "id": ident, "path": str(reuse.path), "reused": True,
            "metrics": reuse.manifest.get("metrics", {})}


@contextlib.contextmanager
def run_lock(run_dir: Path, name: str, ident: str) -> Iterator[None]:
    """Hold `runs/<name>/.lock` while training `name` (flock: released even on SIGKILL). A run of
    the same id waits for the holder (then reuses its model); one of another id exits 2 at once."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / RUN_LOCK, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                holder = json.loads(fh.read() or "{}")
            except ValueError:
                holder = {}
            holder = holder if isinstance(holder, dict) else {}
            pid = holder.get("pid", "?")
            if holder.get("id") not in (None, ident):
                raise BadInput(f"--name {name}: another run (pid {pid}) is training '{name}' with another configuration "
                               f"(id {str(holder.get('id'))[:8]}, this run {ident[:8]}); wait for it or pick another --name") from None
            ui.info(f"waiting for the other run training '{name}' (pid {pid}); its model will be reused")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "id": ident}) + "\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_run_state(run_dir: Path, name: str, resume: bool, force: bool) -> None:
    """A rerun must say what to do with the run state an unfinished run left: --resume or --force."""
    recover_dir(run_dir, "last", "state.json")  # a checkpoint swap a killed run left half done
    state_file = run_dir / "last" / "state.json"
    if resume or force or not state_file.is_file():
        return
    try:
        state = json.loads(state_file.read_text())
        done = f"step {int(state['step'])} of {int(state['settings']['steps'])}"
    except (OSError, ValueError, KeyError, TypeError):
        done = "an unreadable state.json"
    raise BadInput(f"--name {name}: {run_dir / 'last'} holds the run state of an earlier run of that name ({done}) "
                   "and no model was published from it; pass --resume to continue it or --force to start over")


def _train_and_publish(ws: Workspace, job: TrainingJob, name: str, ident: str, id_fields: dict, run_dir: Path,
                       target: Path) -> dict:
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
                save_weights(module, w.path(f"{stem}.safetensors"))
            w.write_json("config.json", job.cfg.to_dict())
        w.write_json("metrics.json", out["metrics"])
        return {"metrics": out["metrics"], "parts": sorted(parts), "run": str(run_dir),
                "losses": {"first": out["losses"][0] if out["losses"] else None, "last": out["last_loss"]}}

    publish(ws, job.kind, job.command, MODEL_SCHEMA, name, job.request, id_fields, job.inputs, build, force=job.force,
            noun=job.kind)
    return result

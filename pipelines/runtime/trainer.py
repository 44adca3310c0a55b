"""The training loop shared by every stage: seeds, batches as a pure function of the step,
checkpoints with optimiser state and RNG, `--resume`, EMA, validation, DDP through torchrun.

Because batch indices depend only on (seed, step), and the RNG state is saved with every
checkpoint, a run killed and resumed ends with the same weights as one that was never stopped.
Run state lives in `runs/<name>/last/` (atomic swaps); the finished model is published as a
`models/<name>/` artifact.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from ..console import ui
from ..errors import RunFailure
from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import DistInfo, all_reduce_mean
from .train_request import TrainSettings


def ema_decay(n: int) -> float:
    """The official schedule: 0.999 * (1 - exp(-n / 2000))."""
    return 0.999 * (1.0 - math.exp(-n / 2000.0))


def batch_indices(n_items: int, step: int, batch: int, world: int, rank: int, seed: int) -> np.ndarray:
    """Item indices of this rank's batch at `step`: a seeded permutation per epoch, a pure function
    of (seed, step), so resuming replays exactly the data an uninterrupted run would see."""
    per_step = batch * world
    start = step * per_step
    out = []
    while len(out) < batch:
        pos = start + rank * batch + len(out)
        epoch, off = divmod(pos, n_items)
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n_items, generator=g)
        out.append(int(perm[off]))
    return np.asarray(out)


@dataclass
class Stage:
    """What a training stage plugs into the loop: `loss`, or `step` for a stage whose library owns
    the whole optimiser step (the video model's `finetune_step`: autocast, clipping, AdamW)."""

    model: torch.nn.Module  # the trained module (unwrapped)
    n_items: int  # training items (frames or windows)
    make_batch: Callable[[np.ndarray], dict]  # indices -> batch on the device
    loss: Callable[[torch.nn.Module, dict, int], tuple[torch.Tensor, dict[str, float]]] | None = None
    validate: Callable[[torch.nn.Module], dict[str, float]] | None = None
    params: Callable[[torch.nn.Module], list] | None = None  # trainable parameters (default all)
    # (net, optimizer, batch, step) -> detached loss on the device: zero_grad, backward, clip and
    # optimizer.step all inside; the loop still sets the warm-up lr before it.
    step: Callable[[torch.nn.Module, torch.optim.Optimizer, dict, int], torch.Tensor] | None = None
    optimizer: Callable[[list], torch.optim.Optimizer] | None = None  # default AdamW(lr, weight_decay)


def _checkpoint_due(settings: TrainSettings, step: int, end: int) -> bool:
    return bool(settings.ckpt_every) and (step % settings.ckpt_every == 0 or step == end)


def _finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.is_floating_point())


def _saved_step(last: Path) -> int | None:
    try:
        return int(json.loads((last / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train(stage: Stage, settings: TrainSettings, run_dir: Path, config: dict, device: torch.device,
          info: DistInfo, resume: bool = False, stop_after: int | None = None) -> dict:
    """Train to `settings.steps`; returns {'step', 'last_loss', 'losses', 'metrics', 'seconds'}.

    `stop_after` ends the run early after that many steps (tests use it to simulate a kill).
    """
    torch.manual_seed(settings.seed + info.rank)
    model = stage.model.to(device)
    params = stage.params(model) if stage.params else [p for p in model.parameters() if p.requires_grad]
    opt = stage.optimizer(params) if stage.optimizer else torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    trained = {id(p) for p in params}
    ema = copy.deepcopy(model).eval() if settings.ema else None
    if ema is not None:
        for p in ema.parameters():
            p.requires_grad_(False)
    step = 0
    history: list[float] = []
    last = run_dir / "last"
    if resume:
        meta = load_checkpoint(last, model, opt, ema)  # weights, optimiser, EMA and RNG
        step = int(meta["step"])
        history = list(meta.get("losses", []))
        ui.info(f"resumed from {last} at step {step}")
    net = DDP(model) if info.world > 1 else model
    t0, first_step = time.perf_counter(), step
    end = settings.steps if stop_after is None else min(settings.steps, step + stop_after)
    metrics: dict[str, float] = {}
    validated_at = -1
    with ui.progress(f"training {config.get('stage', '')}".strip(), settings.steps - step) as bar:
        while step < end:
            idx = batch_indices(stage.n_items, step, settings.batch_size, info.world, info.rank, settings.seed)
            batch = stage.make_batch(idx)
            lr = settings.lr * min(1.0, (step + 1) / settings.warmup) if settings.warmup else settings.lr
            for g in opt.param_groups:
                g["lr"] = lr
            net.train()
            if stage.step is not None:
                loss = stage.step(net, opt, batch, step)
            else:
                loss, _ = stage.loss(net, batch, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if settings.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
                opt.step()
            step += 1
            if ema is not None:
                d = ema_decay(step)
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        if id(pm) in trained:
                            pe.mul_(d).add_(pm.detach(), alpha=1.0 - d)
                        else:  # frozen: an average of equal values would still drift by rounding
                            pe.copy_(pm)
                    for be, bm in zip(ema.buffers(), model.buffers()):
                        be.copy_(bm)
            value = float(all_reduce_mean(loss.detach(), info))
            if not math.isfinite(value) or (info.main and _checkpoint_due(settings, step, end) and not _finite(model)):
                what = f"the training loss is {value}" if not math.isfinite(value) else "the weights became NaN or infinite"
                saved = _saved_step(last)
                kept = f"the run state in {last} keeps step {saved}" if saved else "no checkpoint was kept"
                raise RunFailure(f"step {step}: {what} (lr {lr:g}); training stopped and nothing was published; {kept}; "
                                 "lower --lr (or --grad-clip) and start again with --force")
            history.append(value)
            rate = (step - first_step) / max(time.perf_counter() - t0, 1e-9)
            bar.advance(status=f"loss {value:.4f} {rate:.2f} it/s")
            if info.main and _checkpoint_due(settings, step, end):
                save_checkpoint(last, model, opt, {"step": step, "losses": history, "settings": dataclasses.asdict(settings)},
                                config, ema)
            if stage.validate and settings.val_every and step % settings.val_every == 0 and info.main:
                metrics, validated_at = stage.validate(ema if ema is not None else model), step
                ui.info(f"step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    if info.main and not all(_finite(m) for m in (model, ema) if m is not None):
        raise RunFailure(f"step {step}: the weights became NaN or infinite; nothing was published; lower --lr "
                         "(or --grad-clip) and start again with --force")
    if stage.validate and info.main and step == settings.steps and validated_at != step:
        metrics = stage.validate(ema if ema is not None else model)
    return {"step": step, "last_loss": history[-1] if history else None, "losses": history,
            "metrics": metrics, "seconds": time.perf_counter() - t0, "ema": ema}

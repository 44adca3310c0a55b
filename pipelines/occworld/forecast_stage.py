"""The forecaster training stages (GenieDrive recipe).

predict: VAE frozen; β-weighted per-step latent MSE + 0.01·trajectory + 1.0·rotation, scheduled
         sampling p = exp(-2.5·it/total). Latents of the frozen VAE (posterior means) are computed
         once per frame and kept in memory, since they cannot change.
e2e:     VAE unfrozen (dropout 0); per future frame class-weighted CE + Lovász-softmax on the
         decoded logits (valid frames only) + 0.01·trajectory + 1.0·rotation; same sampling. The
         observation-fusion head, if any, stays frozen (it reads the decoded class through argmax,
         so no gradient would pass it); run `fuse` after `e2e` to refit it to the new decoder.
fuse:    (not in GenieDrive) VAE and forecaster frozen; only the observation-fusion head trains
         (fuse_stage.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cache import PackedCache
from ..data.windows import ForecastWindows
from ..errors import BadInput
from .fuse_stage import fusion_stage
from .losses import CLASS_WEIGHTS, step_weights, lovasz_softmax, rotation_loss, trajectory_loss
from .requests import FUTURE, PAST
from ..runtime.trainer import Stage
from .world_model import (WorldModel, initial_history, rollout, step_targets, teacher_probability,
                          window_steps)

TRAJ_WEIGHT = 0.01
ROT_WEIGHT = 1.0


def horizon_at(step: int, total_steps: int, future: int) -> int:
    """Future keyframes trained at `step` of `total_steps` (the horizon curriculum). Up to the
    official 6 the horizon is `future` throughout; beyond it, it grows linearly from 6 at the first
    step to `future` at half the run and stays there, since early steps are mostly teacher-forced
    (scheduled sampling) and long rollouts of an untrained forecaster only cost time."""
    if future <= FUTURE:
        return future
    ramp = max(1, total_steps // 2)
    return min(future, FUTURE + (future - FUTURE) * step // ramp)


def truncate_window(batch: dict, future: int) -> dict:
    """The batch's first PAST + 1 + `future` frames (every [B, T, ...] entry)."""
    t = PAST + 1 + future
    return {k: v[:, :t] for k, v in batch.items()}


def collate(windows: ForecastWindows, idx: np.ndarray, device: torch.device) -> dict:
    """Stack window items: occ [B, T, X, Y, Z] long, rel_poses [B, T, 4, 4], commands [B, T, 3],
    valid [B, T], frames [B, T] global frame indices."""
    items = [windows[int(i)] for i in idx]
    out = {k: torch.stack([it[k] for it in items]).to(device) for k in ("occ", "rel_poses", "commands", "valid")}
    out["occ"] = out["occ"].long()
    out["frames"] = torch.from_numpy(np.stack([windows.frame_indices(int(i))[0] for i in idx]))
    return out


class FrozenLatents:
    """Posterior means of a frozen VAE per global frame index, computed on first use."""

    def __init__(self, vae: torch.nn.Module, cache: PackedCache, device: torch.device):
        self.vae, self.cache, self.device = vae, cache, device
        self.store: dict[int, torch.Tensor] = {}

    def __deepcopy__(self, memo):  # the EMA copy of the objective shares the (frozen) latents
        return self

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, T] -> latents [B, T, C, 50, 58]."""
        missing = sorted({int(f) for f in frames.flatten()} - set(self.store))
        self.vae.eval()
        for i in range(0, len(missing), 4):
            chunk = missing[i:i + 4]
            occ = torch.from_numpy(np.asarray(self.cache.semantics[chunk])).to(self.device).long()
            for f, z in zip(chunk, self.vae.encode(occ, sample=False)):
                self.store[f] = z
        return torch.stack([torch.stack([self.store[int(f)] for f in row]) for row in frames])


def forecast_losses(model: WorldModel, batch: dict, latents: torch.Tensor, teacher_p: float, generator: torch.Generator,
                    decode: bool) -> dict[str, torch.Tensor]:
    """Roll the forecaster over one batch of windows and return the loss terms."""
    steps = window_steps(batch["rel_poses"])  # [B, T-1, 4, 4]
    k = model.cfg.forecaster.history
    hist, motion = initial_history(latents[:, :PAST + 1], steps[:, :PAST], k)
    targets = latents[:, PAST + 1:]
    pred_lat, pred_step = rollout(model.forecaster, hist, motion, steps[:, PAST:], batch["commands"][:, PAST:-1],
                                  targets.detach(), teacher_p, generator)
    valid = batch["valid"][:, PAST + 1:]
    gt = step_targets(steps[:, PAST:])
    out = {"traj": trajectory_loss(pred_step[..., :2], gt[..., :2], valid),
           "rot": rotation_loss(pred_step[..., 2:], gt[..., 2:], valid)}
    vf = valid.to(pred_lat.dtype)
    if not decode:
        mse = (pred_lat - targets).pow(2).mean((2, 3, 4))  # [B, F]
        beta = torch.as_tensor(step_weights(mse.shape[1]), dtype=mse.dtype, device=mse.device)
        out["latent_mse"] = ((mse * vf).sum(0) / vf.sum(0).clamp(min=1) * beta).sum()
        return out
    weights = torch.as_tensor(CLASS_WEIGHTS, dtype=pred_lat.dtype, device=pred_lat.device)
    ce = pred_lat.new_zeros(())
    lov = pred_lat.new_zeros(())
    occ = batch["occ"][:, PAST + 1:]
    for i in range(pred_lat.shape[1]):
        keep = valid[:, i]
        if not bool(keep.any()):
            continue
        logits = model.vae.decode(pred_lat[keep, i])
        ce = ce + F.cross_entropy(logits, occ[keep, i], weight=weights)
        lov = lov + lovasz_softmax(logits.softmax(1), occ[keep, i])
    out["ce"], out["lovasz"] = ce, lov
    return out


class ForecastObjective(torch.nn.Module):
    """Wraps the world model so that DDP sees one forward per step (gradient sync needs it)."""

    def __init__(self, model: WorldModel, stage: str, latents: FrozenLatents | None):
        super().__init__()
        self.model, self.stage, self.latents = model, stage, latents

    def forward(self, batch: dict, teacher_p: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if self.stage == "predict":
            lat = self.latents(batch["frames"])
        else:
            b, t = batch["occ"].shape[:2]
            lat = self.model.vae.encode(batch["occ"].flatten(0, 1)).view(b, t, *self.model.vae_latent_shape)
        return forecast_losses(self.model, batch, lat, teacher_p, generator, decode=self.stage != "predict")


def forecaster_stage(stage: str, model: WorldModel, cache: PackedCache, device: torch.device, total_steps: int,
                     seed: int, validate=None, train_windows: np.ndarray | None = None, future: int = FUTURE) -> Stage:
    """A trainer Stage for `predict`, `e2e` or `fuse` (fuse_stage.py) over the dataset's train windows
    of `future` keyframes (predict and e2e; horizon_at gives the curriculum)."""
    if stage == "fuse":
        return fusion_stage(model, cache, device, seed, PAST, FUTURE, train_windows, validate)
    windows = ForecastWindows(cache, PAST, future, split="train" if "train" in cache.scene_splits else None)
    items = np.arange(len(windows)) if train_windows is None else np.asarray(train_windows)
    if len(items) == 0:
        raise BadInput("--dataset: no training windows (no scene in the train split has a frame); prepare more scenes")
    if stage == "predict":
        model.vae.requires_grad_(False)
    if model.forecaster.obs_fusion is not None:  # refit by `fuse`; see the module docstring
        model.forecaster.obs_fusion.requires_grad_(False)
    latents = FrozenLatents(model.vae, cache, device) if stage == "predict" else None
    objective = ForecastObjective(model, stage, latents)

    def make_batch(idx: np.ndarray) -> dict:
        return collate(windows, items[idx], device)

    def loss(net, batch, step):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)  # scheduled-sampling draws per step
        terms = net(truncate_window(batch, horizon_at(step, total_steps, future)), teacher_probability(step, total_steps), gen)
        total = TRAJ_WEIGHT * terms["traj"] + ROT_WEIGHT * terms["rot"]
        total = total + (terms["latent_mse"] if stage == "predict" else terms["ce"] + terms["lovasz"])
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def params(obj):
        return [p for p in obj.parameters() if p.requires_grad]

    return Stage(objective, len(items), make_batch, loss, validate=validate, params=params)

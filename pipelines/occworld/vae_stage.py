"""The `vae` training stage: CE + Lovász-softmax + 0.005·KL on single frames (GenieDrive recipe)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cache import PackedCache
from ..metrics.occupancy import confusion_matrix, summarise
from .configs import VAEConfig
from .losses import lovasz_softmax
from ..runtime.trainer import Stage
from .vae import TriplaneVAE, kl_loss

KL_WEIGHT = 0.005


def split_frames(cache: PackedCache, split: str) -> np.ndarray:
    """Global frame indices of the scenes in `split` ([N])."""
    keep = [i for i, s in enumerate(cache.scene_splits) if s == split]
    return np.concatenate([np.arange(cache.scene_start[i], cache.scene_start[i + 1]) for i in keep]) if keep else np.zeros(0, np.int64)


def reconstruction_metrics(vae: torch.nn.Module, cache: PackedCache, frames: np.ndarray, device: torch.device,
                           batch: int = 2) -> dict[str, float]:
    """Recon mIoU (both conventions) and IoU of argmax(decode(mu)) over `frames`."""
    vae.eval()
    cm = np.zeros((18, 18), np.int64)
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            occ = torch.from_numpy(np.asarray(cache.semantics[frames[i:i + batch]])).to(device).long()
            pred = vae.decode(vae.encode(occ, sample=False)).argmax(1)
            cm += confusion_matrix(pred.cpu(), occ.cpu())
    return {f"recon_{k}": v for k, v in summarise(cm).items()}


def vae_stage(cfg: VAEConfig, cache: PackedCache, device: torch.device, val_frames: int = 16,
              train_frames: np.ndarray | None = None) -> Stage:
    model = TriplaneVAE(cfg)
    frames = split_frames(cache, "train") if train_frames is None else np.asarray(train_frames)
    if len(frames) == 0:
        frames = np.arange(cache.num_frames)
    val = split_frames(cache, "val")[:val_frames]
    if len(val) == 0:
        val = frames[:val_frames]

    def make_batch(idx: np.ndarray) -> dict:
        occ = np.asarray(cache.semantics[np.sort(frames[idx])])
        return {"occ": torch.from_numpy(occ).to(device).long()}

    def loss(net, batch, step):
        occ = batch["occ"]
        logits, mu, logvar = net(occ)
        ce = F.cross_entropy(logits, occ)
        lov = lovasz_softmax(logits.softmax(1), occ)
        kl = kl_loss(mu, logvar)
        total = ce + lov + KL_WEIGHT * kl
        return total, {"ce": ce.item(), "lovasz": lov.item(), "kl": kl.item()}

    return Stage(model, len(frames), make_batch, loss,
                 validate=lambda m: reconstruction_metrics(m, cache, val, device))

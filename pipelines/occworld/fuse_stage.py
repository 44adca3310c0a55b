"""The `fuse` stage: fit the observation-fusion table with the VAE and the forecaster frozen.

The head works per voxel (observation_fusion.py), so its loss over a uniform random subset of
voxels is an unbiased estimate of the loss over the grid. Each training window is rolled out and
decoded once (no gradient: nothing before the head trains), VOXELS_PER_FRAME voxels of each
future frame are drawn with a generator seeded by (seed, window), and only those are kept; later
visits of the window reuse them, which makes a step cost milliseconds instead of a full rollout
and decode, and keeps resumed runs exact. Loss: plain cross-entropy on the model's own forecasts
(the errors the head must correct), whose optimum is each table row's label posterior. Class
weights and Lovász-softmax were tried with the earlier MLP head and gave false positives of the
rare classes (bicycle, pedestrian) without a better held-out mIoU, so the table is not weighted.

A seeded subset of at most MAX_WINDOWS complete windows (about 10^7 voxels over 6 future frames
each) is plenty for 11,664 table entries and bounds the cache (~0.8 MB a window).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cache import PackedCache
from ..data.windows import ForecastWindows
from ..errors import BadInput
from ..data.warp import warp_labels
from ..runtime.trainer import Stage
from .world_model import WorldModel, forecast_latents, window_steps

VOXELS_PER_FRAME = 32_768
MAX_WINDOWS = 64


class FusionSamples:
    """Per window, the head's inputs and targets at sampled voxels of every future frame, computed
    on first use, all [F*K] uint8 / bool: decoded (the forecast's argmax, all the table reads),
    warped, inside, target."""

    def __init__(self, model: WorldModel, windows: ForecastWindows, past: int, seed: int, device: torch.device):
        self.model, self.windows, self.past, self.seed, self.device = model, windows, past, seed, device
        self.store: dict[int, dict[str, torch.Tensor]] = {}

    def __deepcopy__(self, memo):  # an EMA copy of the stage shares the cache
        return self

    @torch.no_grad()
    def __call__(self, w: int) -> dict[str, torch.Tensor]:
        if w not in self.store:
            self.store[w] = self._sample(w)
        return self.store[w]

    def _sample(self, w: int) -> dict[str, torch.Tensor]:
        model, p, dev = self.model.eval(), self.past, self.device
        item = self.windows[w]
        occ = item["occ"].to(dev).long()
        lat = model.vae.encode(occ[:p + 1], sample=False)[None]
        pred, moved = forecast_latents(model, lat, window_steps(item["rel_poses"].to(dev)[None]),
                                       item["commands"].to(dev)[None, p:-1])
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + w)
        parts = []
        for i in range(pred.shape[1]):
            logits = model.vae.decode(pred[:, i])[0].flatten(1)  # [C, X*Y*Z]
            warped, inside = warp_labels(occ[p][None], moved[:, i])
            target = occ[p + 1 + i].reshape(-1)
            pick = torch.randint(0, logits.shape[1], (VOXELS_PER_FRAME,), generator=gen).to(dev)
            nz = warped.shape[-1]
            parts.append({"decoded": logits[:, pick].argmax(0).to(torch.uint8), "warped": warped.reshape(-1)[pick].to(torch.uint8),
                          "inside": inside.reshape(-1)[pick // nz], "target": target[pick].to(torch.uint8)})
        return {k: torch.cat([q[k] for q in parts]) for k in parts[0]}


def fusion_stage(model: WorldModel, cache: PackedCache, device: torch.device, seed: int, past: int, future: int,
                 train_windows: np.ndarray | None = None, validate=None) -> Stage:
    """A trainer Stage whose only trainable parameters are the fusion head's."""
    head = model.forecaster.obs_fusion
    if head is None:
        raise BadInput("--stage fuse: the model has no observation-fusion head; its config needs "
                       "forecaster.observation_fusion (train-forecaster turns it on for this stage)")
    windows = ForecastWindows(cache, past, future, split="train" if "train" in cache.scene_splits else None,
                              drop_partial=True)  # the head learns from complete futures only
    if train_windows is not None:
        items = np.asarray(train_windows)
    else:
        items = np.arange(len(windows))
        if len(items) > MAX_WINDOWS:
            items = np.sort(np.random.default_rng(seed).choice(items, MAX_WINDOWS, replace=False))
    if len(items) == 0:
        raise BadInput("--dataset: no complete training window (3 past + 6 future frames) for the fuse stage; "
                       "prepare longer scenes")
    model.requires_grad_(False)
    head.requires_grad_(True)
    samples = FusionSamples(model, windows, past, seed, device)

    def make_batch(idx: np.ndarray) -> dict[str, torch.Tensor]:
        got = [samples(int(items[i])) for i in idx]
        return {k: torch.cat([g[k] for g in got]) for k in got[0]}

    def loss(net, batch, step):
        ce = net(batch)
        return ce, {"ce": float(ce.detach())}

    return Stage(FusionObjective(model), len(items), make_batch, loss, validate=validate,
                 params=lambda obj: [p for p in obj.parameters() if p.requires_grad])


class FusionObjective(torch.nn.Module):
    """The head's loss as a module, so that DDP sees one forward per step (gradient sync needs it)."""

    def __init__(self, model: WorldModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch: decoded, warped, inside, target [N] -> cross-entropy of the fused logits."""
        fused = self.model.forecaster.obs_fusion.lookup(batch["decoded"], batch["warped"], batch["inside"])
        return F.cross_entropy(fused, batch["target"].long())

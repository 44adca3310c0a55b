"""What a training command asks for, as plain values: the options every training stage shares
(`TrainRequest`, whose field defaults are the commands' defaults) and the checked loop settings
they become (`TrainSettings`).

Light on purpose (no torch, no numpy): `gdrive <command> --help` reads the defaults from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..limits import check_int, check_real
from ..store.names import check_name

MAX_STEPS = 100_000_000  # optimiser steps (and --val-every / --ckpt-every)
MAX_BATCH = 4096  # items per step and process


@dataclass
class TrainSettings:
    steps: int = 1000
    batch_size: int = 2  # per process
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off
    warmup: int = 0
    ema: bool = True
    val_every: int = 0  # 0 = only at the end
    ckpt_every: int = 100
    seed: int = 0


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
        """Checked loop settings (and --name, before any work); `extra` carries stage-specific ones
        (weight decay, clip, warm-up)."""
        if self.name is not None:
            check_name(self.name)
        check_int(self.steps, "--steps", 1, MAX_STEPS)
        check_int(self.batch_size, "--batch-size", 1, MAX_BATCH)
        check_int(self.val_every, "--val-every", 0, MAX_STEPS)
        check_int(self.ckpt_every, "--ckpt-every", 0, MAX_STEPS)
        check_real(self.lr, "--lr", 0.0, math.inf, low_open=True)
        if "weight_decay" in extra:
            check_real(extra["weight_decay"], "--weight-decay", 0.0, 10.0)
        if "grad_clip" in extra:
            check_real(extra["grad_clip"], "--grad-clip", 0.0, 1e6)
        if "warmup" in extra:
            check_int(extra["warmup"], "--warmup", 0, MAX_STEPS)
        return TrainSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr, ema=self.ema,
                             val_every=self.val_every, ckpt_every=self.ckpt_every, seed=self.seed, **extra)

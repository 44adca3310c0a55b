"""Forecasting windows over the packed cache, as a PyTorch dataset.

One window per keyframe (the "current" frame): k past frames, the current one and N future frames
(default 3 + 1 + 6, the GenieDrive protocol). Frames outside the scene are replaced by the nearest
frame of the same scene and marked invalid, as the official loader does; `drop_partial=True` keeps
only complete windows (the evaluation protocol).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import PackedCache
from .controls import command_one_hot
from ..errors import BadInput


class ForecastWindows(Dataset):
    """Items (T = past + 1 + future, index `past` is the current frame):

    occ        [T, 200, 200, 16] uint8 labels 0..17 (call .long() on the device)
    valid      [T] bool, False where the frame lies beyond the scene (replaced by the nearest one)
    ego_to_global [T, 4, 4] float64; rel_poses [T, 4, 4] float32: each frame's ego in the current ego frame
    controls   [T, 5] float32 (Δx, Δy, Δyaw, speed, yaw rate); commands [T, 3] float32 one-hot
    scene      int scene index; frame int index of the current frame in its scene
    """

    def __init__(self, cache: PackedCache, past: int = 3, future: int = 6, split: str | None = None,
                 drop_partial: bool = False):
        if past < 0 or future < 0:
            raise BadInput(f"windows: past ({past}) and future ({future}) must be >= 0")
        self.cache, self.past, self.future = cache, past, future
        keep = [i for i, s in enumerate(cache.scene_splits) if split is None or s == split]
        if split is not None and not keep:
            have = sorted(set(cache.scene_splits))
            raise BadInput(f"split '{split}': no scenes in that split (splits: {', '.join(have)})")
        centres = []
        for si in keep:
            a, b = int(cache.scene_start[si]), int(cache.scene_start[si + 1])
            lo, hi = (a + past, b - future) if drop_partial else (a, b)
            centres.extend(range(lo, max(lo, hi)))
        self.centres = np.asarray(centres, np.int64)

    def __len__(self) -> int:
        return len(self.centres)

    def frame_indices(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Global frame indices of window i ([T]) and their validity ([T] bool)."""
        c = int(self.centres[i])
        si = int(self.cache.frame_scene[c])
        a, b = int(self.cache.scene_start[si]), int(self.cache.scene_start[si + 1])
        want = np.arange(c - self.past, c + self.future + 1)
        valid = (want >= a) & (want < b)
        return np.clip(want, a, b - 1), valid

    def __getitem__(self, i: int) -> dict:
        idx, valid = self.frame_indices(i)
        c = int(self.centres[i])
        # Contiguous frames are one slice of the memmap; clamped ends repeat a frame.
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = np.asarray(self.cache.semantics[lo:hi])
        occ = torch.from_numpy(block[idx - lo])
        poses = self.cache.ego_to_global[idx]
        rel = np.linalg.inv(self.cache.ego_to_global[c])[None] @ poses
        return {
            "occ": occ,
            "valid": torch.from_numpy(valid),
            "ego_to_global": torch.from_numpy(poses),
            "rel_poses": torch.from_numpy(rel.astype(np.float32)),
            "controls": torch.from_numpy(self.cache.controls[idx].astype(np.float32)),
            "commands": torch.from_numpy(command_one_hot(self.cache.commands[idx])),
            "scene": int(self.cache.frame_scene[c]),
            "frame": int(self.cache.frame_index[c]),
        }

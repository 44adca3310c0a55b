"""The world model: tri-plane VAE + forecaster, and the autoregressive rollout shared by training,
`gdrive forecast` and `gdrive evaluate occ`.

History layout (official EE_World): k latent slots, oldest first, the last one is the current
frame; slots before the window's first frame repeat it. Motion slot j holds the ego step that
arrived at latent slot j (9 numbers: Δx, Δy in the previous ego frame, the relative rotation as a
wxyz quaternion, and [vx, vy, yaw rate]); slots with no known step hold zero motion (identity
quaternion; the official buffer resets them to all-ones, which is not a rotation).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from ..data.scene import KEYFRAME_DT
from ..errors import BadInput
from ..runtime.checkpoint import load_weights, write_model_folder
from .configs import WorldModelConfig
from .forecaster import Forecaster, rotmat_to_quat
from .latent_warp import warp_latent
from ..data.warp import warp_labels
from .observation_fusion import accumulated_poses
from .vae import TriplaneVAE
from ..store import Workspace
from ..store.artifacts import find_artifact


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig):
        super().__init__()
        self.cfg = cfg
        self.vae = TriplaneVAE(cfg.vae)
        self.forecaster = Forecaster(cfg.forecaster)

    @property
    def vae_latent_shape(self) -> tuple[int, int, int]:
        """(C, 50, 58): the xy, xz and yz planes side by side."""
        return (self.cfg.vae.dim, 50, 58)

    def decode_future(self, latent: torch.Tensor, current: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        """Logits of one forecast frame: latent [B, C, 50, 58]; current [B, X, Y, Z] the last
        observed labels; moved [B, 4, 4] the frame's ego pose in the last observed frame (used by
        the observation-fusion head when the config has one). Returns [B, 18, X, Y, Z]."""
        logits = self.vae.decode(latent)
        fusion = self.forecaster.obs_fusion
        if fusion is None:
            return logits
        warped, inside = warp_labels(current, moved)
        return fusion(logits, warped, inside)

    @classmethod
    def from_folder(cls, folder: Path, cfg: WorldModelConfig, need_forecaster: bool = True) -> "WorldModel":
        """Rebuild from a model folder (vae.safetensors [+ forecaster.safetensors])."""
        model = cls(cfg)
        load_weights(model.vae, folder / "vae.safetensors")
        if need_forecaster:
            load_weights(model.forecaster, folder / "forecaster.safetensors")
        return model.eval()

    # -- the Python API (pipelines.occworld) ---------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder: str | Path, workspace: str | Path | None = None) -> "WorldModel":
        """A model folder written by gdrive (training, `import-weights` or save_pretrained), or a
        model of `workspace` by name, id or 'latest' (default workspace: $GDRIVE_WORKSPACE, else
        ./gdrive-workspace): its config.json rebuilds the model; vae.safetensors and, when present,
        forecaster.safetensors load into it. In eval mode."""
        folder = Path(folder)
        if not folder.exists() and len(folder.parts) == 1:  # a bare name: a model of the workspace
            folder = find_artifact(Workspace.at(workspace), "model", str(folder), "model").path
        if not (folder / "config.json").is_file():
            raise BadInput(f"{folder}: holds no config.json; give a world-model folder (models/<name>)")
        return cls.from_folder(folder, read_config(folder), need_forecaster=(folder / "forecaster.safetensors").is_file())

    def save_pretrained(self, folder: str | Path) -> None:
        """Write config.json, vae.safetensors and forecaster.safetensors into `folder` (replaced as
        a whole: written beside it, then renamed)."""
        write_model_folder(Path(folder), self.cfg.to_dict(), {"vae": self.vae, "forecaster": self.forecaster})

    def encode(self, labels) -> torch.Tensor:
        """labels int64 [B, 200, 200, 16] (tensor or numpy) -> float32 [B, C, 50, 58], the posterior
        mean."""
        occ = torch.as_tensor(labels, device=self._device()).long()
        return self.vae.posterior(occ)[0].float()

    def decode(self, latent) -> torch.Tensor:
        """latent [B, C, 50, 58] (tensor or numpy) -> float32 logits [B, 18, 200, 200, 16]."""
        z = torch.as_tensor(latent, device=self._device(), dtype=next(self.vae.parameters()).dtype)
        return self.vae.decode(z).float()

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def read_config(folder: Path) -> WorldModelConfig:
    """The checked config.json of a model folder (BadInput naming the file when it is broken)."""
    where = folder / "config.json"
    try:
        return WorldModelConfig.from_dict(json.loads(where.read_text()), str(where))
    except ValueError as exc:
        raise BadInput(f"{where}: not valid JSON ({exc}); retrain or restore the model folder") from None


def open_world_model(ref: str, workspace, flag: str = "--model", need_forecaster: bool = True) -> tuple[WorldModel, Path]:
    """A model by folder path (with config.json) or by workspace reference (name, id, 'latest')."""
    folder = Path(ref)
    if not (folder / "config.json").is_file():
        folder = find_artifact(Workspace.at(workspace), "model", ref, flag).path
    cfg = read_config(folder)
    if need_forecaster and not (folder / "forecaster.safetensors").is_file():
        raise BadInput(f"{flag} '{ref}': {folder} holds no forecaster.safetensors (a VAE only); train one with "
                       f"`gdrive train-forecaster --stage predict --init {ref}`")
    return WorldModel.from_folder(folder, cfg, need_forecaster), folder


def step_targets(step: torch.Tensor) -> torch.Tensor:
    """[..., 4, 4] current->next ego transforms -> [..., 6] (Δx, Δy, quaternion wxyz), the
    transformation head's target."""
    return torch.cat([step[..., :2, 3], rotmat_to_quat(step[..., :3, :3])], -1)


def motion_features(step: torch.Tensor, dt: float = KEYFRAME_DT) -> torch.Tensor:
    """[..., 4, 4] ego step -> [..., 9] history control: Δx, Δy, quaternion, vx, vy, yaw rate."""
    yaw = torch.atan2(step[..., 1, 0], step[..., 0, 0])
    vel = torch.stack([step[..., 0, 3] / dt, step[..., 1, 3] / dt, yaw / dt], -1)
    return torch.cat([step_targets(step), vel], -1)


def window_steps(rel_poses: torch.Tensor) -> torch.Tensor:
    """[B, T, 4, 4] poses in one reference frame -> [B, T-1, 4, 4] steps inv(P_t) @ P_{t+1}."""
    return torch.linalg.inv(rel_poses[:, :-1]) @ rel_poses[:, 1:]


def initial_history(latents: torch.Tensor, past_steps: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill the k history slots from the observed frames.

    latents [B, P+1, C, 50, 58] (oldest first, last = current); past_steps [B, P, 4, 4] the steps
    between them. Returns (history [B, k, C, 50, 58], motion [B, k, 9]).
    """
    b, n = latents.shape[:2]
    if n >= k:
        hist = latents[:, n - k:]
    else:
        hist = torch.cat([latents[:, :1].expand(b, k - n, *latents.shape[2:]), latents], 1)
    motion = motion_features(past_steps) if past_steps.shape[1] else latents.new_zeros(b, 0, 9)
    zero = latents.new_zeros(b, 1, 9)
    zero[..., 2] = 1.0  # identity quaternion
    pad = k - motion.shape[1]
    motion = torch.cat([zero.expand(b, pad, 9), motion], 1) if pad > 0 else motion[:, -k:]
    return hist, motion


def rollout(forecaster: Forecaster, history: torch.Tensor, motion: torch.Tensor, steps: torch.Tensor,
            commands: torch.Tensor, targets: torch.Tensor | None = None, teacher_p: float = 0.0,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Autoregressive forecast of F steps.

    history [B, k, C, 50, 58] (last = current); motion [B, k, 9]; steps [B, F, 4, 4] the ego step
    that drives each forecast step; commands [B, F, 3] one-hot. With `targets` [B, F, C, 50, 58]
    and teacher_p > 0 (scheduled sampling), each batch element continues from the ground-truth
    latent with probability teacher_p, else from its own prediction.
    With the `warp` motion prior, the prior of every step is the last observed latent warped once by
    the accumulated motion (warping each prediction again would blur the scene a little more at
    every step).
    Returns (latents [B, F, C, 50, 58], predicted steps [B, F, 6]).
    """
    latents, preds = [], []
    current = anchor = history[:, -1]
    moved = accumulated_poses(steps)  # [B, F, 4, 4] frame i+1 in the last observed frame
    warp = forecaster.cfg.motion_prior == "warp"
    for i in range(steps.shape[1]):
        prior = warp_latent(anchor, moved[:, i]) if warp else None
        nxt, pred = forecaster.step(current, history, motion, commands[:, i], steps[:, i], prior)
        latents.append(nxt)
        preds.append(pred)
        feed = nxt
        if targets is not None and teacher_p > 0:
            use_gt = torch.rand(nxt.shape[0], generator=generator) < teacher_p
            feed = torch.where(use_gt.to(nxt.device).view(-1, 1, 1, 1), targets[:, i], nxt)
        history = torch.cat([history[:, 1:], feed.detach().unsqueeze(1)], 1)
        motion = torch.cat([motion[:, 1:], motion_features(steps[:, i]).unsqueeze(1)], 1)
        current = feed
    return torch.stack(latents, 1), torch.stack(preds, 1)


def forecast_latents(model: WorldModel, latents: torch.Tensor, steps: torch.Tensor,
                     commands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Free-running forecast from observed latents, as forecast, evaluate and the fuse stage run it.

    latents [B, P+1, C, 50, 58] observed (last = current); steps [B, P+F, 4, 4] the P observed ego
    steps then the F that drive the forecast; commands [B, F, 3] one-hot. Returns (forecast latents
    [B, F, C, 50, 58], the pose of each forecast frame in the current frame [B, F, 4, 4]).
    """
    past = latents.shape[1] - 1
    if model.cfg.protocol == "geniedrive":  # imported official weights: the official rollout
        from .official_protocol import official_forecast

        return official_forecast(model, latents, steps, commands), accumulated_poses(steps[:, past:])
    hist, motion = initial_history(latents, steps[:, :past], model.cfg.forecaster.history)
    pred, _ = rollout(model.forecaster, hist, motion, steps[:, past:], commands)
    return pred, accumulated_poses(steps[:, past:])


def teacher_probability(step: int, total: int) -> float:
    """Scheduled sampling: p = exp(-2.5 * it / total), 1.0 at the start."""
    return math.exp(-2.5 * step / max(total, 1))

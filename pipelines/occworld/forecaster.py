"""The control-conditioned forecaster (GenieDrive "EE_World" predictor), one step at a time.

Per step: the current latent [B, C, 50, 58] becomes 2900 tokens (row/column + temporal
embeddings); the pose encoder turns the 9 history slots' controls into one plan token; 5
Mutual-Control-Attention layers exchange information between scene and plan; the transformation
head reads the plan token into a per-command ego step (Δxy + quaternion); a fusion cross-attention
injects the step transform that drives the forecast; 5 spatio-temporal layers fuse the 9-frame
history per cell; the tokens are reshaped into the next latent (no residual from the current one).
With the `warp` motion prior (not in the paper) the current latent warped by the driving ego step
joins the tokens before the spatio-temporal layers, and their output is a residual added to it
through a per-channel scale that starts at zero (at initialisation the forecast is the warped
current frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.occ3d import NUM_CLASSES
from .attention import DeformableAttention2D, MultiHeadAttention
from .configs import ForecasterConfig
from .latent_warp import warp_latent
from .observation_fusion import ObservationFusion

ROWS, COLS = 50, 58


def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(), nn.Linear(hidden, dim_out))


class PoseEncoder(nn.Module):
    """[B, k, 9] history controls -> one plan token [B, 1, C]."""

    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        h = cfg.pose_hidden
        # No activation after the last Linear (official PoseEncoder.plan_input).
        self.mlp = _mlp(cfg.control_dim, h, h)
        self.slot = nn.Parameter(nn.init.trunc_normal_(torch.empty(cfg.history, h), std=0.02))
        self.proj = nn.Linear(cfg.history * h, cfg.dim)

    def forward(self, controls: torch.Tensor) -> torch.Tensor:
        x = self.mlp(controls) + self.slot
        return self.proj(x.flatten(1)).unsqueeze(1)


class CrossBlock(nn.Module):
    """Queries attend to a context; q + MLP(Attn(q, ctx)), one residual around both (the official
    plan injection, CrossPlanAttention and pose_attn: no residual between attention and MLP)."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads)
        self.mlp = _mlp(dim, hidden, dim)

    def forward(self, q: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return q + self.mlp(self.attn(q, ctx))


class MCALayer(nn.Module):
    """Mutual-Control-Attention: plan->scene, deformable self-attention, scene->plan, FFNs."""

    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        d = cfg.dim
        self.plan_to_scene = CrossBlock(d, cfg.plan_to_scene_heads, d)
        self.deform = DeformableAttention2D(d, cfg.deform_heads, cfg.deform_points)
        self.norm_scene1, self.norm_plan1 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.scene_to_plan = CrossBlock(d, cfg.scene_to_plan_heads, d)
        self.norm_scene2, self.norm_plan2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffn_scene, self.ffn_plan = _mlp(d, cfg.ffn_dim, d), _mlp(d, cfg.ffn_dim, d)
        self.norm_scene3, self.norm_plan3 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, scene: torch.Tensor, plan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scene = self.plan_to_scene(scene, plan)
        scene = scene + self.deform(scene, scene, (ROWS, COLS))
        scene, plan = self.norm_scene1(scene), self.norm_plan1(plan)
        plan = self.scene_to_plan(plan, scene)
        scene, plan = self.norm_scene2(scene), self.norm_plan2(plan)
        scene = self.norm_scene3(scene + self.ffn_scene(scene))
        plan = self.norm_plan3(plan + self.ffn_plan(plan))
        return scene, plan


class TemporalFusion(nn.Module):
    """Per cell: concat(token, k history latents) -> MLP -> residual."""

    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        d = cfg.dim
        self.net = nn.Sequential(
            nn.Linear(d * (cfg.history + 1), d), nn.ReLU(), nn.Linear(d, d),
            nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d),
        )

    def forward(self, x: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        return x + self.net(torch.cat([x, history], -1))


class SpatioTemporalLayer(nn.Module):
    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        d = cfg.dim
        self.deform = DeformableAttention2D(d, cfg.deform_heads, cfg.deform_points)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.fusion = TemporalFusion(cfg)
        self.ffn = _mlp(d, cfg.ffn_dim, d)

    def forward(self, x: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.deform(x, x, (ROWS, COLS)))
        x = self.norm2(self.fusion(x, history))
        return self.norm3(x + self.ffn(x))


def sinusoidal(values: torch.Tensor, freqs: int) -> torch.Tensor:
    """[B, n] scalars -> [B, n * 2 * freqs]: cos ‖ sin at frequencies 10000^(-i/freqs)."""
    f = 10000.0 ** (-torch.arange(freqs, device=values.device, dtype=values.dtype) / freqs)
    ang = values.unsqueeze(-1) * f
    return torch.cat([ang.cos(), ang.sin()], -1).flatten(1)


class ControlFusion(nn.Module):
    """The step transform (9 rotation + 3 translation entries) as one token the scene attends to."""

    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        d = cfg.dim
        self.freqs = cfg.fusion_freqs
        self.embed = _mlp(12 * 2 * cfg.fusion_freqs, d, d)
        self.cross = CrossBlock(d, cfg.fusion_heads, d)

    def forward(self, scene: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """scene [B, N, C]; step [B, 4, 4] current->next ego transform."""
        flat = torch.cat([step[:, :3, :3].flatten(1), step[:, :3, 3]], 1)
        token = self.embed(sinusoidal(flat, self.freqs)).unsqueeze(1)
        return self.cross(scene, token)


class TransformationHead(nn.Module):
    """Plan token -> per command [Δx, Δy, qw, qx, qy, qz]; the command picks a row."""

    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        self.num_commands = cfg.num_commands
        self.net = nn.Sequential(nn.Linear(cfg.dim, cfg.head_hidden), nn.Softplus(),
                                 nn.Linear(cfg.head_hidden, cfg.num_commands * 6))

    def forward(self, plan: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        """plan [B, 1, C]; command [B, 3] one-hot -> [B, 6] with a unit quaternion."""
        out = self.net(plan[:, 0]).view(-1, self.num_commands, 6)
        row = (out * command.unsqueeze(-1)).sum(1)
        return torch.cat([row[:, :2], F.normalize(row[:, 2:], dim=-1)], -1)


class Forecaster(nn.Module):
    def __init__(self, cfg: ForecasterConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.pose_encoder = PoseEncoder(cfg)
        self.col_embed = nn.Parameter(torch.randn(COLS, d // 2))
        self.row_embed = nn.Parameter(torch.randn(ROWS, d - d // 2))
        self.time_embed = nn.Embedding(cfg.history + 1, d)  # 0..k-1 history, k = current
        self.low = nn.ModuleList(MCALayer(cfg) for _ in range(cfg.low_layers))
        self.head = TransformationHead(cfg)
        self.fusion = ControlFusion(cfg)
        self.high = nn.ModuleList(SpatioTemporalLayer(cfg) for _ in range(cfg.high_layers))
        if cfg.motion_prior == "warp":
            self.residual_scale = nn.Parameter(torch.zeros(d))
        # Applied after the VAE decodes a forecast (WorldModel.decode_future), not in `step`.
        self.obs_fusion = ObservationFusion(NUM_CLASSES) if cfg.observation_fusion else None

    def _pos(self) -> torch.Tensor:
        """[ROWS * COLS, C] column ‖ row embedding (official order: channels [0, C/2) by the column,
        the rest by the row), row-major over (50, 58)."""
        return torch.cat([
            self.col_embed.unsqueeze(0).expand(ROWS, COLS, -1),
            self.row_embed.unsqueeze(1).expand(ROWS, COLS, -1),
        ], -1).reshape(ROWS * COLS, -1)

    def step(self, current: torch.Tensor, history: torch.Tensor, controls: torch.Tensor,
             command: torch.Tensor, step_transform: torch.Tensor | None = None,
             prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One forecast step.

        current [B, C, 50, 58]; history [B, k, C, 50, 58] (oldest first); controls [B, k, 9];
        command [B, 3] one-hot; step_transform [B, 4, 4] current->next ego transform that drives
        the forecast (None: use the transform predicted from the plan token); prior [B, C, 50, 58]
        the `warp` prior's latent for the next frame (None: the current latent warped by the step).
        Returns (next latent [B, C, 50, 58], predicted step [B, 6] = Δx, Δy, quaternion wxyz).
        """
        b, c = current.shape[:2]
        k = self.cfg.history
        pos = self._pos()
        scene = current.flatten(2).transpose(1, 2) + pos + self.time_embed.weight[k]
        hist = history.flatten(3).permute(0, 3, 1, 2) + self.time_embed.weight[:k]  # [B, N, k, C]
        hist = hist.reshape(b, ROWS * COLS, k * c)  # frame-major per cell
        plan = self.pose_encoder(controls)
        for layer in self.low:
            scene, plan = layer(scene, plan)
        pred = self.head(plan, command)
        if step_transform is None:
            step_transform = step_from_prediction(pred)
        scene = self.fusion(scene, step_transform)
        if self.cfg.motion_prior == "warp":
            prior = warp_latent(current, step_transform) if prior is None else prior
            scene = scene + prior.flatten(2).transpose(1, 2)  # the high layers see the aligned scene
        for layer in self.high:
            scene = layer(scene, hist)
        out = scene.transpose(1, 2).reshape(b, c, ROWS, COLS)
        if self.cfg.motion_prior == "warp":
            out = prior + self.residual_scale.view(1, c, 1, 1) * out
        return out, pred


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """[..., 4] wxyz -> [..., 3, 3]."""
    q = F.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).view(*q.shape[:-1], 3, 3)


def rotmat_to_quat(r: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] rotation -> [..., 4] unit quaternion wxyz with w >= 0."""
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    w = torch.sqrt(torch.clamp(1 + m00 + m11 + m22, min=0)) / 2
    x = torch.sqrt(torch.clamp(1 + m00 - m11 - m22, min=0)) / 2
    y = torch.sqrt(torch.clamp(1 - m00 + m11 - m22, min=0)) / 2
    z = torch.sqrt(torch.clamp(1 - m00 - m11 + m22, min=0)) / 2
    x = torch.copysign(x, r[..., 2, 1] - r[..., 1, 2])
    y = torch.copysign(y, r[..., 0, 2] - r[..., 2, 0])
    z = torch.copysign(z, r[..., 1, 0] - r[..., 0, 1])
    return F.normalize(torch.stack([w, x, y, z], -1), dim=-1)


def step_from_prediction(pred: torch.Tensor) -> torch.Tensor:
    """[B, 6] (Δx, Δy, quaternion) in the current ego frame -> [B, 4, 4] current->next transform."""
    t = torch.eye(4, device=pred.device, dtype=pred.dtype).repeat(pred.shape[0], 1, 1)
    t[:, :3, :3] = quat_to_rotmat(pred[:, 2:])
    t[:, 0, 3] = pred[:, 0]
    t[:, 1, 3] = pred[:, 1]
    return t

"""Named world-model configurations in one plain registry: `paper`, `small`, `debug`.

`paper` has the official GenieDrive sizes (VAE 1,744,072 and predictor 1,722,418 parameters,
3,466,490 in all: the released checkpoints' and the paper's 3.47 M); `small` trains on a CPU and
adds the ego-motion warp prior (latent_warp.py), which a CPU-sized forecaster cannot learn from
data in an hour, and the observation-fusion head (observation_fusion.py); `debug` is for tests. Configs are saved beside
weights (`config.json`) and used to rebuild the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import BadInput
from ..limits import check_fields


@dataclass(frozen=True)
class VAEConfig:
    num_classes: int = 18
    embed_dim: int = 8  # learned class embedding 18 -> 8 (not one-hot)
    dim: int = 64  # conv channels = latent channels = axis-transformer width
    down_kernel: int = 5  # two stride-2 3-D convolutions: 200x200x16 -> 50x50x4
    up_kernel: int = 4  # two stride-2 transposed convolutions back to 200x200x16
    heads: int = 2
    depth: int = 2  # post-norm blocks per axis transformer
    ffn_dim: int = 64
    dropout: float = 0.5  # standalone VAE training; the end-to-end model uses 0.0


@dataclass(frozen=True)
class ForecasterConfig:
    dim: int = 64  # token width (= VAE latent channels)
    history: int = 9  # memory frames (k)
    low_layers: int = 5  # Mutual-Control-Attention layers
    high_layers: int = 5  # spatio-temporal layers
    deform_heads: int = 8
    deform_points: int = 4
    plan_to_scene_heads: int = 4  # scene tokens attend to the plan token
    scene_to_plan_heads: int = 8  # the plan token attends to the scene
    fusion_heads: int = 4
    ffn_dim: int = 512  # official: EE_FormerEncoderLayer's own default 512 wins over the config's 128
    pose_hidden: int = 32
    control_dim: int = 9  # per history slot: Δxy (2) + relative quaternion (4) + [vx, vy, yaw rate]
    num_commands: int = 3
    head_hidden: int = 32
    fusion_freqs: int = 4  # sinusoidal frequencies per step-transform scalar
    future: int = 6
    # "none": the official predictor (the next latent comes from the tokens alone); "warp": start
    # each step from the current latent warped by the driving ego step and learn a residual
    # (latent_warp.py). Not in the paper; adds one per-channel residual scale.
    motion_prior: str = "none"
    # Observation fusion (observation_fusion.py, not in the paper): a per-voxel table turns each
    # decoded forecast frame and the current observation warped to the frame's ego pose into logits.
    observation_fusion: bool = False


# How a model is rolled out and evaluated. "gdrive": gdrive's conventions (ego-frame steps, the
# known past motion in the history, identity quaternions in empty slots); "geniedrive": the official
# EE_World.forward_sample and its quirks (official_protocol.py), which models imported from the
# released checkpoints need because they were trained under them.
PROTOCOLS = ("gdrive", "geniedrive")


@dataclass(frozen=True)
class WorldModelConfig:
    name: str
    vae: VAEConfig = field(default_factory=VAEConfig)
    forecaster: ForecasterConfig = field(default_factory=ForecasterConfig)
    protocol: str = "gdrive"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["protocol"] == "gdrive":
            del d["protocol"]  # the default: configs (and artifact ids) from before the field stay the same
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "config.json") -> "WorldModelConfig":
        """Rebuild a config saved beside weights, checking every field: a config.json is input,
        and a string width, zero heads or a width that would allocate terabytes exits 2 here."""
        try:
            cfg = cls(d["name"], VAEConfig(**d["vae"]), ForecasterConfig(**d["forecaster"]), d.get("protocol", "gdrive"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadInput(f"{where}: not a world-model config ({type(exc).__name__}: {exc}); rebuild it from a named config") from None
        if not isinstance(cfg.name, str) or not cfg.name:
            raise BadInput(f"{where}: 'name' must be a config name such as small; rebuild it from a named config")
        for part, ranges in (("vae", _VAE_RANGES), ("forecaster", _FORECASTER_RANGES)):
            check_fields(getattr(cfg, part), ranges, f"{where}: {part}")
        check_motion_prior(cfg.forecaster.motion_prior, f"{where}: forecaster.motion_prior")
        if cfg.protocol not in PROTOCOLS:
            raise BadInput(f"{where}: protocol '{cfg.protocol}' is unknown; it is one of {', '.join(PROTOCOLS)}")
        _check_divisible(cfg, where)
        n = approx_parameters(cfg)
        if n > MAX_PARAMETERS:
            raise BadInput(f"{where}: this config has about {n / 1e9:.1f} billion parameters ({4 * n / 2**30:.0f} GiB), "
                           f"more than the {MAX_PARAMETERS / 1e9:g} billion a world model may have; rebuild the config")
        return cfg


# Plausible ranges of the config fields (inclusive). `num_classes` is the Occ3D contract.
_VAE_RANGES = {"num_classes": (18, 18), "embed_dim": (1, 256), "dim": (1, 1024), "down_kernel": (1, 15),
               "up_kernel": (2, 16), "heads": (1, 64), "depth": (0, 32), "ffn_dim": (1, 8192), "dropout": (0.0, 0.99)}
_FORECASTER_RANGES = {"dim": (1, 1024), "history": (1, 64), "low_layers": (0, 64), "high_layers": (0, 64),
                      "deform_heads": (1, 64), "deform_points": (1, 64), "plan_to_scene_heads": (1, 64),
                      "scene_to_plan_heads": (1, 64), "fusion_heads": (1, 64), "ffn_dim": (1, 8192),
                      "pose_hidden": (1, 4096), "control_dim": (9, 9), "num_commands": (3, 3), "head_hidden": (1, 4096),
                      "fusion_freqs": (1, 64), "future": (1, 64)}


MAX_PARAMETERS = 1_000_000_000  # the paper model has 3.47 M; this bounds what a config.json can allocate


def approx_parameters(cfg: "WorldModelConfig") -> int:
    """The dominant parameter terms of a config (convolutions and transformer blocks), within a few
    times the exact count: enough to refuse a config that would allocate terabytes, without
    building it."""
    v, f = cfg.vae, cfg.forecaster
    vae = (v.embed_dim + v.dim) * v.dim * v.down_kernel ** 3 + 2 * v.dim * v.dim * v.up_kernel ** 3
    vae += 3 * v.depth * (4 * v.dim * v.dim + 2 * v.dim * v.ffn_dim)
    layer = 12 * f.dim * f.dim + 2 * f.dim * f.ffn_dim + f.dim * f.deform_heads * f.deform_points * 3
    return vae + (f.low_layers + f.high_layers) * layer + f.dim * (f.pose_hidden + f.head_hidden) * 4


def _check_divisible(cfg: "WorldModelConfig", where: str) -> None:
    """Attention widths split evenly over their heads (else building the model fails halfway)."""
    v, f = cfg.vae, cfg.forecaster
    pairs = [("vae.dim", v.dim, "vae.heads", v.heads)] + [
        ("forecaster.dim", f.dim, f"forecaster.{h}", getattr(f, h))
        for h in ("deform_heads", "plan_to_scene_heads", "scene_to_plan_heads", "fusion_heads")]
    for dim_name, dim, heads_name, heads in pairs:
        if dim % heads:
            raise BadInput(f"{where}: {dim_name} {dim} does not split into {heads_name} {heads}; rebuild the config")


MOTION_PRIORS = ("none", "warp")


def check_motion_prior(value: str, where: str = "--motion-prior") -> str:
    if value not in MOTION_PRIORS:
        raise BadInput(f"{where} '{value}': unknown motion prior; choose one of {', '.join(MOTION_PRIORS)}")
    return value


CONFIGS: dict[str, WorldModelConfig] = {
    "paper": WorldModelConfig("paper"),
    "small": WorldModelConfig(
        "small",
        VAEConfig(dim=32, down_kernel=3, heads=2, depth=1, ffn_dim=32, dropout=0.1),
        ForecasterConfig(dim=32, low_layers=2, high_layers=2, deform_heads=4, plan_to_scene_heads=2,
                         scene_to_plan_heads=4, fusion_heads=2, ffn_dim=64, pose_hidden=16, head_hidden=16,
                         motion_prior="warp", observation_fusion=True),
    ),
    "debug": WorldModelConfig(
        "debug",
        VAEConfig(dim=8, down_kernel=3, up_kernel=4, heads=2, depth=1, ffn_dim=8, dropout=0.0),
        ForecasterConfig(dim=8, history=3, low_layers=1, high_layers=1, deform_heads=2, deform_points=2,
                         plan_to_scene_heads=2, scene_to_plan_heads=2, fusion_heads=2, ffn_dim=16,
                         pose_hidden=8, head_hidden=8),
    ),
}


def get_config(name: str, flag: str = "--model-config") -> WorldModelConfig:
    if name not in CONFIGS:
        raise BadInput(f"{flag} '{name}': unknown world-model config; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]

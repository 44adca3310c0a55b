"""Named video-model configurations in one plain registry.

- `wan2.1-1.3b`: the released GenieDrive occ_render model (Wan2.1-Fun-V1.1-1.3B-Control layout): a
  30-layer Wan transformer of width 1536 (12 heads x 128), ffn 8960, patch (1, 2, 2), whose 48
  input channels are 16 noisy latents + 16 condition (semantic video) latents + 16 first-frame
  latents (the official in_dim 48); the CLIP-image cross-attention (`model_type` "i2v": 257 CLIP
  ViT-H tokens of width 1280) and the first-frame `ref_conv` tokens; Normalized Multi-View
  Attention after blocks i % 3 == 0 and the last (11 blocks), eta = 0.2; the Wan2.1 VAE (z_dim 16,
  4x time, 8x space). Its sizes are those of the official full-size checkpoint, so released
  weights load into it (`gdrive import-weights --format geniedrive-video`).
- `wan2.1-1.3b-t2v`: the same sizes in the text-only layout (no image branch, no ref_conv; the first
  frame enters through its latents only), which a diffusers T2V base
  (`Wan-AI/Wan2.1-T2V-1.3B-Diffusers`) widens into for `gdrive finetune-video --base`.
- `debug` (text-only) and `debug-i2v` (the released layout): tiny random models for CPU tests.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..data.rig import VIEW_RING
from ..errors import BadInput
from ..limits import MAX_FPS, MAX_IMAGE_SIDE, MAX_VIDEO_FRAMES, check_fields
from ..store.names import check_component

# The official multi-view ring: batch = groups of views in this order, neighbours side by side in
# the multi-view sequence (FL | F | FR | BR | B | BL). The 1-D RoPE over the row is not circular,
# so the start of the ring matters for official checkpoints.
OFFICIAL_VIEWS: tuple[str, ...] = VIEW_RING


MODEL_TYPES = ("t2v", "i2v")
CLIP_IMAGE_DIM = 1280  # CLIP ViT-H/14 width: the official image embedder's input
CLIP_IMAGE_TOKENS = 257  # 1 + (224 / 14)^2 CLIP tokens, read from the front of the context


@dataclass(frozen=True)
class TransformerSpec:
    """Arguments of diffusers' `WanTransformer3DModel` (in/out channels derive from the VAE).

    Layout (the defaults are the text-only layout, which every video_config.json written before
    these fields existed holds): `model_type` "i2v" adds the CLIP-image cross-attention
    (`image_dim`-wide features, the first `image_tokens` context tokens); `add_ref_conv` the
    first-frame reference tokens (a Conv2d over the z_dim first-frame latents).
    """

    num_attention_heads: int = 12
    attention_head_dim: int = 128
    num_layers: int = 30
    ffn_dim: int = 8960
    text_dim: int = 4096  # UMT5-XXL width; prompts arrive as precomputed embeddings
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    cross_attn_norm: bool = True
    qk_norm: str = "rms_norm_across_heads"
    rope_max_seq_len: int = 1024
    model_type: str = "t2v"  # 't2v' (text only) | 'i2v' (+ CLIP image cross-attention)
    add_ref_conv: bool = False  # first-frame reference tokens (official ref_conv)
    image_dim: int | None = None  # CLIP feature width (1280) with model_type 'i2v', else None
    image_tokens: int = CLIP_IMAGE_TOKENS  # leading context tokens that are image tokens (i2v)

    @property
    def dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def i2v(self) -> bool:
        return self.model_type == "i2v"

    def check_layout(self, where: str, text_len: int) -> None:
        """The layout fields of a config read from a file (check_fields cannot type image_dim)."""
        if self.model_type not in MODEL_TYPES:
            raise BadInput(f"{where}: transformer.model_type {self.model_type!r} is not one of "
                           f"{', '.join(MODEL_TYPES)}; rebuild the config from a named one")
        if not isinstance(self.add_ref_conv, bool):
            raise BadInput(f"{where}: transformer.add_ref_conv = {self.add_ref_conv!r}: expected true or false")
        dim = self.image_dim
        if self.i2v:
            if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 16384:
                raise BadInput(f"{where}: transformer.image_dim = {dim!r}: model_type 'i2v' needs the CLIP feature "
                               f"width (a positive integer, {CLIP_IMAGE_DIM} for CLIP ViT-H)")
            if not self.image_tokens < text_len:
                raise BadInput(f"{where}: transformer.image_tokens = {self.image_tokens} must be fewer than "
                               f"text_len {text_len} (the image tokens lead the context)")
        elif dim is not None:
            raise BadInput(f"{where}: transformer.image_dim = {dim!r} with model_type 't2v'; set it to null "
                           "or model_type to 'i2v'")


@dataclass(frozen=True)
class VAESpec:
    """Arguments of diffusers' `AutoencoderKLWan` (defaults: the Wan2.1 VAE)."""

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temperal_downsample: tuple[bool, ...] = (False, True, True)  # diffusers' spelling

    @property
    def temporal_stride(self) -> int:
        return 2 ** sum(self.temperal_downsample)

    @property
    def spatial_stride(self) -> int:
        # one spatial halving per stage transition, whether or not it also halves time
        return 2 ** len(self.temperal_downsample)

    def diffusers_kwargs(self) -> dict:
        return {
            "base_dim": self.base_dim,
            "z_dim": self.z_dim,
            "dim_mult": list(self.dim_mult),
            "num_res_blocks": self.num_res_blocks,
            "temperal_downsample": list(self.temperal_downsample),
            "scale_factor_temporal": self.temporal_stride,
            "scale_factor_spatial": self.spatial_stride,
        }


@dataclass(frozen=True)
class MultiViewSpec:
    views: tuple[str, ...] = OFFICIAL_VIEWS
    eta: float = 0.2  # residual weight of the normalised multi-view output
    every: int = 3  # multi-view after blocks i % every == 0, and after the last block

    def blocks(self, num_layers: int) -> tuple[int, ...]:
        return tuple(i for i in range(num_layers) if i % self.every == 0 or i == num_layers - 1)


@dataclass(frozen=True)
class FlowSpec:
    num_train_timesteps: int = 1000
    shift: float = 5.0  # official config shift; Euler sampling uses it too
    condition_dropout: float = 0.1  # per view, separately for condition and first-frame latents
    loss_clip: float = 50.0  # elements with |pred - target| > loss_clip are left out of the MSE


@dataclass(frozen=True)
class SamplingSpec:
    steps: int = 50
    guidance: float = 6.0  # classifier-free guidance on the prompt; 1.0 disables it
    chunk_frames: int = 81  # frames per rollout round (4k + 1)
    seed: int = 43
    fps: int = 12


@dataclass(frozen=True)
class OptimSpec:
    lr: float = 2e-5
    weight_decay: float = 3e-2
    eps: float = 1e-10
    grad_clip: float = 0.05
    warmup_steps: int = 100
    train_frames: int = 37  # clip length in training (4k + 1)


@dataclass(frozen=True)
class VideoConfig:
    name: str
    transformer: TransformerSpec = field(default_factory=TransformerSpec)
    vae: VAESpec = field(default_factory=VAESpec)
    multiview: MultiViewSpec = field(default_factory=MultiViewSpec)
    flow: FlowSpec = field(default_factory=FlowSpec)
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    resolution: tuple[int, int] = (256, 512)  # (height, width) per view
    text_len: int = 512  # prompt tokens (UMT5 context); zeros when no prompt is given
    base_model: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"  # hub id of a diffusers-format base ("" none)

    @property
    def latent_channels(self) -> int:
        return self.vae.z_dim

    @property
    def in_channels(self) -> int:
        # noisy latents | condition latents | first-frame latents
        return 3 * self.vae.z_dim

    @property
    def num_views(self) -> int:
        return len(self.multiview.views)

    @property
    def multiview_blocks(self) -> tuple[int, ...]:
        return self.multiview.blocks(self.transformer.num_layers)

    @property
    def pixel_multiple(self) -> int:
        """Height and width must be multiples of this (VAE stride x patch size)."""
        _, ph, pw = self.transformer.patch_size
        return self.vae.spatial_stride * math.lcm(ph, pw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "video_config.json") -> "VideoConfig":
        try:
            cfg = cls(
                name=d["name"],
                transformer=TransformerSpec(**{**d["transformer"], "patch_size": tuple(d["transformer"]["patch_size"])}),
                vae=VAESpec(**{**d["vae"], "dim_mult": tuple(d["vae"]["dim_mult"]),
                               "temperal_downsample": tuple(d["vae"]["temperal_downsample"])}),
                multiview=MultiViewSpec(**{**d["multiview"], "views": tuple(d["multiview"]["views"])}),
                flow=FlowSpec(**d["flow"]),
                sampling=SamplingSpec(**d["sampling"]),
                optim=OptimSpec(**d["optim"]),
                resolution=tuple(d["resolution"]),
                text_len=d["text_len"],
                base_model=d["base_model"],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadInput(f"{where}: not a video-model config ({type(exc).__name__}: {exc}); "
                           "rebuild it from a named config") from None
        cfg.check(where)
        return cfg

    def check(self, where: str) -> None:
        """Types and plausible sizes of a config read from a file (views become file names)."""
        if not isinstance(self.name, str) or not self.name:
            raise BadInput(f"{where}: 'name' must be a config name such as wan2.1-1.3b")
        # image_dim (int | None) is checked by check_layout; check_fields types fields by their default
        typed = dataclasses.replace(self.transformer, image_dim=None)
        for part, ranges in ((typed, _TRANSFORMER_RANGES), (self.vae, _VAE_RANGES),
                             (self.multiview, {"eta": (0.0, 10.0), "every": (1, 64)}), (self.flow, {}),
                             (self.sampling, {"steps": (1, 1000), "chunk_frames": (1, MAX_VIDEO_FRAMES),
                                              "fps": (1, MAX_FPS)}),
                             (self.optim, {"train_frames": (1, MAX_VIDEO_FRAMES)})):
            check_fields(part, ranges, f"{where}: {type(part).__name__}")
        check_fields(self, {"resolution": (1, MAX_IMAGE_SIDE), "text_len": (1, 4096)}, where)
        self.transformer.check_layout(where, self.text_len)
        views = self.multiview.views
        for v in views:
            check_component(v, where, "view name")
        if not views or len(set(views)) != len(views):
            raise BadInput(f"{where}: multiview.views must name each camera once ({', '.join(views) or 'none'})")


_TRANSFORMER_RANGES = {"num_attention_heads": (1, 64), "attention_head_dim": (1, 512), "num_layers": (1, 96),
                       "ffn_dim": (1, 65536), "text_dim": (1, 16384), "freq_dim": (1, 4096), "patch_size": (1, 8),
                       "rope_max_seq_len": (1, 65536), "image_tokens": (1, 4096)}
_VAE_RANGES = {"base_dim": (1, 512), "z_dim": (1, 128), "dim_mult": (1, 16), "num_res_blocks": (1, 8)}

# the released layout (official occ_render/ckpts/config.json: model_type "i2v", add_ref_conv true)
_RELEASED = {"model_type": "i2v", "add_ref_conv": True, "image_dim": CLIP_IMAGE_DIM}
_DEBUG_TRANSFORMER = TransformerSpec(num_attention_heads=2, attention_head_dim=8, num_layers=3, ffn_dim=32,
                                     text_dim=16, freq_dim=16)
_DEBUG = VideoConfig(
    "debug",
    _DEBUG_TRANSFORMER,
    VAESpec(base_dim=3, dim_mult=(1, 1, 1, 1), num_res_blocks=1),
    sampling=SamplingSpec(steps=2, chunk_frames=9),
    optim=OptimSpec(lr=1e-3, grad_clip=1.0, warmup_steps=0, train_frames=5),
    resolution=(32, 64),
    text_len=8,
    base_model="",
)

CONFIGS: dict[str, VideoConfig] = {
    "wan2.1-1.3b": VideoConfig("wan2.1-1.3b", TransformerSpec(**_RELEASED), base_model=""),
    "wan2.1-1.3b-t2v": VideoConfig("wan2.1-1.3b-t2v"),
    "debug": _DEBUG,
    # the released layout at the debug sizes; a narrow image branch and 5 image tokens (a CLIP of
    # 28 px images in 14 px patches: 1 + 2 x 2) keep it tiny
    "debug-i2v": dataclasses.replace(
        _DEBUG, name="debug-i2v",
        transformer=dataclasses.replace(_DEBUG_TRANSFORMER, **{**_RELEASED, "image_dim": 32}, image_tokens=5)),
}


def get_config(name: str, flag: str = "--video-config") -> VideoConfig:
    if name not in CONFIGS:
        raise BadInput(f"{flag} '{name}': unknown video-model config; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]

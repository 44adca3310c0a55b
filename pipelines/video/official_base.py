"""The base components of the official GenieDrive video model in the formats of kept libraries.

GenieDrive's video model starts from `alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control`, whose three
frozen helpers are stored in Wan's own formats. This module turns each into a library model that
computes the same thing:

| Wan file                                                  | library model                          |
| --------------------------------------------------------- | -------------------------------------- |
| `Wan2.1_VAE.pth` (`AutoencoderKLWan_` state dict)         | diffusers `AutoencoderKLWan`           |
| `models_t5_umt5-xxl-enc-bf16.pth` (`WanT5EncoderModel`)   | transformers `UMT5EncoderModel`        |
| `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth` | transformers `CLIPVisionModel`         |

- `read_wan_pth(path, what)`: a Wan `.pth`, read the way the official loaders read it (a plain
  state dict, never unwrapped), with weights_only=True.
- `vae_from_wan` / `text_encoder_from_wan` / `image_encoder_from_wan`: a Wan state dict plus the
  official constructor arguments -> the library model. Every official tensor must be used (the
  CLIP text tower, `log_scale` and the image head, which the pipeline never runs, may be present)
  and every shape must fit; the model is built on the meta device and takes the given tensors
  (their dtype, unless `dtype` is given), so a full-size T5 (5.7 B parameters) is never randomly
  initialised or copied.
- `convert_base(base_dir, out_dir)`: writes `vae/`, `text_encoder/`, `image_encoder/` (and the
  umT5 `tokenizer/` when the base has one) with save_pretrained, from Wan's files or from
  components already in library format.
- `load_base_components(folder)` and the official calls `official_vae_encode`,
  `official_vae_decode`, `official_text_encode`, `official_image_encode` (+ `clip_preprocess`).

Differences between the official and library code that the conversion absorbs:
- VAE: the official wrapper normalises inside `encode`, (mu - mean) * (1 / std), and undoes it
  in `decode`; diffusers' VAE works on raw latents and only records latents_mean / latents_std
  in its config, so the official calls below apply them. The official decoder's flat list of
  residual / resample blocks becomes diffusers' nested up blocks.
- T5: the official FFN is fc2(fc1(x) * gelu_tanh(gate(x))): `gate` is umT5's `wi_0` (the
  activated branch), `fc1` is `wi_1`. One position-bias table per layer (shared_pos=False) is
  umT5's layout; the token embedding fills both tied umT5 embeddings.
- CLIP: the fused `to_qkv` (rows q | k | v) is split; the class and position embeddings lose
  their leading singleton axes. The pipeline reads the output of all blocks but the last before
  the final norm, which is transformers' `hidden_states[-2]`.

Anything wrong with the input (a missing file, a pickle that needs code, a key or shape that does
not fit, a config the library cannot express) raises BadInput with one line.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

from ..errors import BadInput
from .loading import VideoModel
from .loading import _load as _load_diffusers
from .loading import _one_line
from ..weights import _is_torchscript, _refusal

# --- names and official sizes ---------------------------------------------------------------------

VAE, TEXT_ENCODER, IMAGE_ENCODER = "vae", "text_encoder", "image_encoder"
COMPONENTS = (VAE, TEXT_ENCODER, IMAGE_ENCODER)
TOKENIZER = "tokenizer"
BASE_CONFIG_FILE = "base_config.json"
# the file names of the released base (and of the official wan_civitai.yaml subpaths)
WAN_FILES = {
    VAE: "Wan2.1_VAE.pth",
    TEXT_ENCODER: "models_t5_umt5-xxl-enc-bf16.pth",
    IMAGE_ENCODER: "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
}
# where a base may keep the umT5 tokenizer: the official config's `tokenizer_subpath`, or ours
TOKENIZER_DIRS = ("tokenizer", "google/umt5-xxl")
_TOKENIZER_MARKERS = ("tokenizer_config.json", "tokenizer.json", "spiece.model")

# Official full sizes, for a base without base_config.json:
# - VAE: `wan_vae._video_vae` defaults with the wrapper's latent_channels=16;
# - T5: `config/wan2.1/wan_civitai.yaml` text_encoder_kwargs (umT5-XXL, dropout 0.0 there);
# - CLIP: `wan_image_encoder.clip_xlm_roberta_vit_h_14` defaults (ViT-H/14), as `CLIPModel()` builds it.
OFFICIAL_VAE_KWARGS: dict = {"dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                             "attn_scales": [], "temperal_downsample": [False, True, True], "dropout": 0.0}
# the 16 per-channel constants the official AutoencoderKLWan hard-codes (diffusers' defaults too)
OFFICIAL_LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                         0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
OFFICIAL_LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
OFFICIAL_T5_KWARGS: dict = {"vocab": 256384, "dim": 4096, "dim_attn": 4096, "dim_ffn": 10240, "num_heads": 64,
                            "num_layers": 24, "num_buckets": 32, "shared_pos": False, "dropout": 0.0}
OFFICIAL_CLIP_KWARGS: dict = {
    "embed_dim": 1024, "image_size": 224, "patch_size": 14, "vision_dim": 1280, "vision_mlp_ratio": 4,
    "vision_heads": 16, "vision_layers": 32, "vision_pool": "token", "vision_pre_norm": True,
    "vision_post_norm": False, "activation": "gelu", "vocab_size": 250002, "max_text_len": 514, "type_size": 1,
    "pad_id": 1, "text_dim": 1024, "text_heads": 16, "text_layers": 24, "text_post_norm": True,
    "text_dropout": 0.1, "attn_dropout": 0.0, "proj_dropout": 0.0, "embedding_dropout": 0.0, "norm_eps": 1e-5,
}
OFFICIAL_KWARGS = {VAE: OFFICIAL_VAE_KWARGS, TEXT_ENCODER: OFFICIAL_T5_KWARGS, IMAGE_ENCODER: OFFICIAL_CLIP_KWARGS}
T5_MAX_DISTANCE = 128  # the official T5RelativeEmbedding's max_dist
T5_EPS = 1e-6          # the official T5LayerNorm's eps
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_WHAT = {VAE: "the Wan VAE", TEXT_ENCODER: "the Wan umT5 text encoder", IMAGE_ENCODER: "the Wan CLIP image encoder"}
_LIBRARY = {VAE: AutoencoderKLWan, TEXT_ENCODER: UMT5EncoderModel, IMAGE_ENCODER: CLIPVisionModel}


def _few(keys: list[str], shown: int = 3) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


# --- reading Wan files -----------------------------------------------------------------------------

def read_wan_pth(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A Wan `.pth` state dict (official names), loaded on the CPU with weights_only=True.

    The official loaders use what torch.load returns as the state dict itself (the VAE and CLIP
    loaders only prefix `model.`), so a dict nested under 'state_dict' / 'model' is not unwrapped
    here either: such a file would not load officially. `.safetensors` is read as the official
    loaders read it. `what` names the component in the message.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file does not exist; give {what} of the Wan2.1 base "
                       f"(alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # SafetensorError, OSError
            raise BadInput(f"{path}: cannot read {what} ({_one_line(exc)}); the file is truncated or corrupt, "
                           "download it again") from None
    else:
        if _is_torchscript(path):
            raise BadInput(f"{path}: is a TorchScript archive, not {what}'s state dict; use the file of the "
                           "Wan2.1 base")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors of many kinds: all mean "not a plain state dict"
            raise BadInput(f"{path}: cannot read {what} ({_refusal(exc)}); use the file of the Wan2.1 base, "
                           "or save a plain state dict of tensors") from None
    if not isinstance(state, Mapping) or not state:
        kind = "an empty dict" if isinstance(state, Mapping) else f"a {type(state).__name__}"
        raise BadInput(f"{path}: holds {kind}, not {what}'s state dict; use the file of the Wan2.1 base")
    odd = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise BadInput(f"{path}: not a plain state dict of tensors ({_few(odd)} hold other objects; the "
                       f"official loader does not unwrap nested dicts); save {what}'s state_dict() itself")
    return dict(state)


# --- key plans: official name <- library keys ------------------------------------------------------

@dataclass(frozen=True)
class _Slot:
    """One official tensor and the library tensors it fills: a copy for each (tied embeddings),
    or, when `split`, equal row blocks in target order (the fused q | k | v)."""

    shape: tuple[int, ...]
    targets: tuple[tuple[str, tuple[int, ...]], ...]  # (library key, library shape)
    split: bool = False


# official_of(library key, library shape) -> (official key, official shape, row block or None)
_Namer = Callable[[str, tuple[int, ...]], tuple[str, tuple[int, ...], "int | None"]]


def _plan(own: Mapping[str, torch.Tensor], official_of: _Namer) -> dict[str, _Slot]:
    """Group a library state dict (meta tensors) by the official tensor each key comes from."""
    shapes: dict[str, tuple[int, ...]] = {}
    targets: dict[str, list[tuple[int, str, tuple[int, ...]]]] = {}
    for key, value in own.items():
        name, shape, block = official_of(key, tuple(value.shape))
        shapes[name] = shape
        targets.setdefault(name, []).append((-1 if block is None else block, key, tuple(value.shape)))
    plan = {}
    for name, group in targets.items():
        group.sort()  # row blocks in official order, whatever order the library lists its keys in
        split = group[0][0] >= 0
        if split and [b for b, _, _ in group] != list(range(len(group))):
            raise RuntimeError(f"official tensor {name}: row blocks {[b for b, _, _ in group]} are incomplete")
        plan[name] = _Slot(shapes[name], tuple((k, s) for _, k, s in group), split)
    return plan


def _check(state: Mapping[str, torch.Tensor], plan: Mapping[str, _Slot], unused: Callable[[str], bool],
           where: str, hint: str) -> None:
    """BadInput unless `state` holds every official tensor of `plan`, with its shape, finite, and
    nothing else beyond the keys `unused` allows."""
    missing = sorted(k for k in plan if k not in state)
    extra = sorted(k for k in state if k not in plan and not unused(k))
    if missing or extra:
        parts = ([f"missing {_few(missing)}"] if missing else []) + ([f"unexpected {_few(extra)}"] if extra else [])
        raise BadInput(f"{where}: weights do not fit their config ({'; '.join(parts)}); {hint}")
    for key, slot in plan.items():
        got = state[key]
        if not isinstance(got, torch.Tensor):
            raise BadInput(f"{where}: '{key}' is a {type(got).__name__}, not a tensor; use the file of the Wan2.1 base")
        if not got.is_floating_point():
            raise BadInput(f"{where}: '{key}' is a {str(got.dtype).replace('torch.', '')} tensor, not floating "
                           "point; use the file of the Wan2.1 base")
        if tuple(got.shape) != slot.shape:
            raise BadInput(f"{where}: '{key}' has shape {tuple(got.shape)}, the config needs {slot.shape}; {hint}")
        if not bool(torch.isfinite(got).all()):
            raise BadInput(f"{where}: '{key}' holds NaN or infinite values; the file is broken, download it again")


def _renamed(state: Mapping[str, torch.Tensor], plan: Mapping[str, _Slot],
             dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Library state dict from a checked official one; views, not copies, unless dtype casts."""
    out: dict[str, torch.Tensor] = {}
    for key, slot in plan.items():
        value = state[key] if dtype is None else state[key].to(dtype)
        parts = value.chunk(len(slot.targets), dim=0) if slot.split else [value] * len(slot.targets)
        for (name, shape), part in zip(slot.targets, parts):
            out[name] = part.reshape(shape)
    return out


def _no_buffers(model: torch.nn.Module) -> None:
    pass


def _filled(model: torch.nn.Module, state: dict[str, torch.Tensor],
            fix_buffers: Callable[[torch.nn.Module], None] = _no_buffers) -> torch.nn.Module:
    """A meta-device model holding `state` (assigned, not copied); then its non-persistent
    buffers, which no state dict carries, are rebuilt on the CPU."""
    model.load_state_dict(state, strict=True, assign=True)
    fix_buffers(model)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:  # a library change added a tensor this module does not know how to fill
        raise RuntimeError(f"{type(model).__name__}: tensors left on the meta device: {_few(left)}")
    return model.eval()


# --- kwargs checks -----------------------------------------------------------------------------------

def _positive_int(cfg: Mapping, name: str, where: str) -> int:
    value = cfg.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{where}: {name} must be a positive integer, not {value!r}")
    return value


def _number(cfg: Mapping, name: str, where: str) -> float:
    value = cfg.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise BadInput(f"{where}: {name} must be a non-negative number, not {value!r}")
    return float(value)


# loader arguments the official configs put beside the constructor's (wan_civitai.yaml); the
# official loaders filter them out, and so does this
_LOADER_ONLY = {"vae_subpath", "temporal_compression_ratio", "spatial_compression_ratio", "text_encoder_subpath",
                "tokenizer_subpath", "text_length", "image_encoder_subpath"}


def _merged(kwargs: Mapping | None, defaults: Mapping, where: str) -> dict:
    """Official constructor kwargs: the given ones over the official full sizes (as the official
    builders update their defaults). Other unknown names are refused rather than dropped: a
    misspelt size would otherwise silently become the full size."""
    if kwargs is None:
        return dict(defaults)
    if not isinstance(kwargs, Mapping):
        raise BadInput(f"{where}: kwargs must be a JSON object, not {type(kwargs).__name__}")
    kwargs = {k: v for k, v in kwargs.items() if k not in _LOADER_ONLY}
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise BadInput(f"{where}: unknown constructor argument(s) {_few(unknown)}; expected some of "
                       f"{', '.join(defaults)}")
    return {**defaults, **kwargs}


# --- VAE ---------------------------------------------------------------------------------------------

def vae_config(kwargs: Mapping | None = None, latents_mean: Iterable[float] | None = None,
               latents_std: Iterable[float] | None = None, where: str = "Wan VAE kwargs") -> dict:
    """Official `_video_vae` kwargs (+ latent statistics) -> diffusers AutoencoderKLWan config."""
    cfg = _merged(kwargs, OFFICIAL_VAE_KWARGS, where)
    dim, z_dim = _positive_int(cfg, "dim", where), _positive_int(cfg, "z_dim", where)
    blocks = _positive_int(cfg, "num_res_blocks", where)
    mult, down = cfg["dim_mult"], cfg["temperal_downsample"]
    if not isinstance(mult, (list, tuple)) or len(mult) != 4 or not all(
            isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in mult):
        # the official decoder halves the input width of up blocks 1..3 only: 4 levels is its layout
        raise BadInput(f"{where}: dim_mult must be 4 positive integers, not {mult!r}")
    if not isinstance(down, (list, tuple)) or len(down) != 3 or not all(isinstance(d, bool) for d in down):
        raise BadInput(f"{where}: temperal_downsample must be 3 booleans, not {down!r}")
    if cfg["attn_scales"]:
        raise BadInput(f"{where}: attn_scales {cfg['attn_scales']!r} is not supported (diffusers' Wan decoder has "
                       "no attention in its up blocks); the Wan2.1 VAE uses []")
    mean = list(OFFICIAL_LATENTS_MEAN if latents_mean is None else latents_mean)
    std = list(OFFICIAL_LATENTS_STD if latents_std is None else latents_std)
    for name, values in (("latents_mean", mean), ("latents_std", std)):
        if len(values) != z_dim or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
            raise BadInput(f"{where}: {name} must be {z_dim} finite numbers (one per latent channel)")
    if min(std) <= 0:
        raise BadInput(f"{where}: latents_std must be positive")
    return {
        "base_dim": dim, "z_dim": z_dim, "dim_mult": list(mult), "num_res_blocks": blocks, "attn_scales": [],
        "temperal_downsample": list(down), "dropout": _number(cfg, "dropout", where),
        "latents_mean": [float(v) for v in mean], "latents_std": [float(v) for v in std],
        "scale_factor_temporal": 2 ** sum(down), "scale_factor_spatial": 2 ** (len(mult) - 1),
    }


_RESIDUAL = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
             "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
             "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}
_VAE_ENDS = {"conv_in": "conv1", "norm_out": "head.0", "conv_out": "head.2"}


def _vae_namer(model: AutoencoderKLWan) -> _Namer:
    """diffusers key -> official key. The official decoder is one flat list (per level: the
    residual blocks, then the resample); the slot of each diffusers up block is counted here."""
    starts, at = [], 0
    for block in model.decoder.up_blocks:
        starts.append(at)
        at += len(block.resnets) + (1 if block.upsamplers is not None else 0)
    mids = {"resnets.0": "0", "attentions.0": "1", "resnets.1": "2"}

    def inner(rest: str) -> str:  # inside a residual block names change; attention / resample keep theirs
        return _RESIDUAL.get(rest, rest)

    def name_of(key: str) -> str:
        if key.startswith("quant_conv."):
            return "conv1." + key[len("quant_conv."):]
        if key.startswith("post_quant_conv."):
            return "conv2." + key[len("post_quant_conv."):]
        part, rest = key.split(".", 1)
        head, _, tail = rest.partition(".")
        if head in _VAE_ENDS:
            return f"{part}.{_VAE_ENDS[head]}.{tail}"
        found = re.fullmatch(r"mid_block\.(resnets\.\d|attentions\.\d)\.(.+)", rest)
        if found:
            return f"{part}.middle.{mids[found.group(1)]}.{inner(found.group(2))}"
        found = re.fullmatch(r"down_blocks\.(\d+)\.(.+)", rest)
        if found:
            return f"{part}.downsamples.{found.group(1)}.{inner(found.group(2))}"
        found = re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", rest)
        if found:
            slot = starts[int(found.group(1))] + int(found.group(2))
            return f"{part}.upsamples.{slot}.{inner(found.group(3))}"
        found = re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)", rest)
        if found:
            block = int(found.group(1))
            slot = starts[block] + len(model.decoder.up_blocks[block].resnets)
            return f"{part}.upsamples.{slot}.{found.group(2)}"
        raise RuntimeError(f"AutoencoderKLWan key {key!r} has no official counterpart (a diffusers change?)")

    def official_of(key: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...], None]:
        return name_of(key), shape, None  # the VAE only renames

    return official_of


def vae_from_wan(state: Mapping[str, torch.Tensor], kwargs: Mapping | None = None,
                 latents_mean: Iterable[float] | None = None, latents_std: Iterable[float] | None = None,
                 dtype: torch.dtype | None = None, where: str = WAN_FILES[VAE]) -> AutoencoderKLWan:
    """A diffusers AutoencoderKLWan (eval) holding the state dict of the official AutoencoderKLWan_.

    kwargs: the official `_video_vae` arguments (None: the Wan2.1 sizes); latents_mean / std: the
    16 normalisation constants (None: the official hard-coded ones), recorded in the config.
    """
    config = vae_config(kwargs, latents_mean, latents_std, f"{where} config")
    with torch.device("meta"):
        model = AutoencoderKLWan(**config)
    plan = _plan(model.state_dict(), _vae_namer(model))
    _check(state, plan, lambda k: False, where, "pass the VAE kwargs these weights were built with")
    return _filled(model, _renamed(state, plan, dtype))


# --- T5 ----------------------------------------------------------------------------------------------

def umt5_config(kwargs: Mapping | None = None, where: str = "Wan T5 kwargs") -> UMT5Config:
    """Official `WanT5EncoderModel` kwargs -> transformers UMT5Config (gated GELU-tanh, eps 1e-6)."""
    cfg = _merged(kwargs, OFFICIAL_T5_KWARGS, where)
    vocab, dim, dim_attn, dim_ffn, heads, layers, buckets = (
        _positive_int(cfg, n, where) for n in ("vocab", "dim", "dim_attn", "dim_ffn", "num_heads", "num_layers",
                                              "num_buckets"))
    if dim_attn % heads:
        raise BadInput(f"{where}: dim_attn {dim_attn} does not split into {heads} heads")
    if cfg["shared_pos"] is not False:
        # one bias table for all layers is T5's layout; umT5 (and the released file) has one per layer
        raise BadInput(f"{where}: shared_pos must be false (the umT5 layout, one position table per layer)")
    return UMT5Config(vocab_size=vocab, d_model=dim, d_kv=dim_attn // heads, d_ff=dim_ffn, num_layers=layers,
                      num_heads=heads, relative_attention_num_buckets=buckets,
                      relative_attention_max_distance=T5_MAX_DISTANCE, dropout_rate=_number(cfg, "dropout", where),
                      layer_norm_epsilon=T5_EPS, feed_forward_proj="gated-gelu", use_cache=False)


# umT5 layer key -> official block key; wi_0 is the GELU-activated branch (official `gate`)
_T5_LAYER = {"layer.0.layer_norm.weight": "norm1.weight", "layer.0.SelfAttention.q.weight": "attn.q.weight",
             "layer.0.SelfAttention.k.weight": "attn.k.weight", "layer.0.SelfAttention.v.weight": "attn.v.weight",
             "layer.0.SelfAttention.o.weight": "attn.o.weight",
             "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
             "layer.1.layer_norm.weight": "norm2.weight", "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
             "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight",
             "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight"}


def _t5_official_of(key: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...], None]:
    if key in ("shared.weight", "encoder.embed_tokens.weight"):  # tied: both from the one embedding
        return "token_embedding.weight", shape, None
    if key == "encoder.final_layer_norm.weight":
        return "norm.weight", shape, None
    found = re.fullmatch(r"encoder\.block\.(\d+)\.(.+)", key)
    if found and found.group(2) in _T5_LAYER:
        return f"blocks.{found.group(1)}.{_T5_LAYER[found.group(2)]}", shape, None
    raise RuntimeError(f"UMT5EncoderModel key {key!r} has no official counterpart (a transformers change?)")


def text_encoder_from_wan(state: Mapping[str, torch.Tensor], kwargs: Mapping | None = None,
                          dtype: torch.dtype | None = None, where: str = WAN_FILES[TEXT_ENCODER]) -> UMT5EncoderModel:
    """A transformers UMT5EncoderModel (eval) holding the state dict of WanT5EncoderModel.

    kwargs: the official constructor arguments (None: umT5-XXL as wan_civitai.yaml gives them).
    The tensors keep their dtype (bfloat16 in the released file) unless `dtype` is given.
    """
    config = umt5_config(kwargs, f"{where} config")
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    plan = _plan(model.state_dict(), _t5_official_of)
    _check(state, plan, lambda k: False, where, "pass the T5 kwargs these weights were built with")
    model = _filled(model, _renamed(state, plan, dtype))
    model.tie_weights()  # assign=True gave the two embeddings separate Parameters of one tensor
    return model


# --- CLIP --------------------------------------------------------------------------------------------

def clip_vision_config(kwargs: Mapping | None = None, where: str = "Wan CLIP kwargs") -> CLIPVisionConfig:
    """Official `clip_xlm_roberta_vit_h_14` kwargs -> transformers CLIPVisionConfig (the vision tower)."""
    cfg = _merged(kwargs, OFFICIAL_CLIP_KWARGS, where)
    dim, heads, layers = (_positive_int(cfg, n, where) for n in ("vision_dim", "vision_heads", "vision_layers"))
    size, patch = _positive_int(cfg, "image_size", where), _positive_int(cfg, "patch_size", where)
    ratio = cfg["vision_mlp_ratio"]
    if dim % heads:
        raise BadInput(f"{where}: vision_dim {dim} does not split into {heads} heads")
    if size % patch:
        raise BadInput(f"{where}: image_size {size} is not a multiple of patch_size {patch}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0 or (dim * ratio) % 1:
        raise BadInput(f"{where}: vision_mlp_ratio {ratio!r} must give a whole MLP width")
    if cfg["vision_pool"] != "token":  # the class token is what makes the 257 tokens the pipeline reads
        raise BadInput(f"{where}: vision_pool {cfg['vision_pool']!r} is not supported; only 'token'")
    if cfg["vision_pre_norm"] is not True or cfg["vision_post_norm"] is not False:
        raise BadInput(f"{where}: only vision_pre_norm true and vision_post_norm false (CLIP's layout) are supported")
    activation = {"gelu": "gelu", "quick_gelu": "quick_gelu"}.get(cfg["activation"])
    if activation is None:
        raise BadInput(f"{where}: activation {cfg['activation']!r} is not supported; only 'gelu' or 'quick_gelu'")
    return CLIPVisionConfig(hidden_size=dim, intermediate_size=int(dim * ratio),
                            projection_dim=_positive_int(cfg, "embed_dim", where), num_hidden_layers=layers,
                            num_attention_heads=heads, num_channels=3, image_size=size, patch_size=patch,
                            hidden_act=activation, layer_norm_eps=_number(cfg, "norm_eps", where),
                            attention_dropout=_number(cfg, "attn_dropout", where))


_CLIP_LAYER = {"layer_norm1": "norm1", "layer_norm2": "norm2", "self_attn.q_proj": "attn.to_qkv",
               "self_attn.k_proj": "attn.to_qkv", "self_attn.v_proj": "attn.to_qkv",
               "self_attn.out_proj": "attn.proj", "mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"}
_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
_CLIP_TOP = {"embeddings.patch_embedding.weight": "visual.patch_embedding.weight",
             "pre_layrnorm.weight": "visual.pre_norm.weight", "pre_layrnorm.bias": "visual.pre_norm.bias",
             "post_layernorm.weight": "visual.post_norm.weight", "post_layernorm.bias": "visual.post_norm.bias"}


def _clip_official_of(key: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...], int | None]:
    key = key.removeprefix("vision_model.")  # transformers 4 nests the tower one level deeper
    if key == "embeddings.class_embedding":  # [dim] <- [1, 1, dim]
        return "visual.cls_embedding", (1, 1, *shape), None
    if key == "embeddings.position_embedding.weight":  # [257, dim] <- [1, 257, dim]
        return "visual.pos_embedding", (1, *shape), None
    if key in _CLIP_TOP:
        return _CLIP_TOP[key], shape, None
    found = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key)
    if found and found.group(2) in _CLIP_LAYER:
        part = found.group(2)
        official = f"visual.transformer.{found.group(1)}.{_CLIP_LAYER[part]}.{found.group(3)}"
        if part in _QKV:  # rows q | k | v of the fused projection
            return official, (3 * shape[0], *shape[1:]), _QKV.index(part)
        return official, shape, None
    raise RuntimeError(f"CLIPVisionModel key {key!r} has no official counterpart (a transformers change?)")


def _clip_unused(key: str) -> bool:
    """Official tensors the pipeline never runs: the XLM-RoBERTa text tower, the contrastive
    temperature and the image projection head (the pipeline reads features before it)."""
    return key.startswith("textual.") or key in ("log_scale", "visual.head")


def _clip_position_ids(model: torch.nn.Module) -> None:
    for module in model.modules():
        ids = module._buffers.get("position_ids")
        if ids is not None and ids.is_meta:
            module.register_buffer("position_ids", torch.arange(ids.shape[-1]).expand(ids.shape), persistent=False)


def image_encoder_from_wan(state: Mapping[str, torch.Tensor], kwargs: Mapping | None = None,
                           dtype: torch.dtype | None = None,
                           where: str = WAN_FILES[IMAGE_ENCODER]) -> CLIPVisionModel:
    """A transformers CLIPVisionModel (eval) holding the `visual.*` tensors of XLMRobertaCLIP.

    kwargs: the official `clip_xlm_roberta_vit_h_14` arguments (None: ViT-H/14). The text tower,
    `log_scale` and `visual.head` may be present and are dropped; every other tensor is used.
    """
    config = clip_vision_config(kwargs, f"{where} config")
    with torch.device("meta"):
        model = CLIPVisionModel(config)
    plan = _plan(model.state_dict(), _clip_official_of)
    _check(state, plan, _clip_unused, where, "pass the CLIP kwargs these weights were built with")
    return _filled(model, _renamed(state, plan, dtype), _clip_position_ids)


# --- a base folder -----------------------------------------------------------------------------------

_FROM_WAN = {VAE: vae_from_wan, TEXT_ENCODER: text_encoder_from_wan, IMAGE_ENCODER: image_encoder_from_wan}


def read_base_config(base_dir: Path) -> dict:
    """base_dir/base_config.json (per component: 'file', 'kwargs', and for the VAE 'latents_mean' /
    'latents_std'), or {} when there is none (the released base: official full sizes)."""
    path = Path(base_dir) / BASE_CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: cannot read ({_one_line(exc)}); fix the JSON or remove the file to use the "
                       "official full sizes") from None
    bad = ["the file"] if not isinstance(cfg, Mapping) else [
        f"the {c} entry" for c in COMPONENTS if c in cfg and not isinstance(cfg[c], Mapping)]
    if bad:
        raise BadInput(f"{path}: {bad[0]} is not a JSON object; see the official reference's base_config.json "
                       "for the layout")
    return dict(cfg)


def _is_library_dir(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def _tokenizer_dir(base_dir: Path) -> Path | None:
    for sub in TOKENIZER_DIRS:
        folder = base_dir / sub
        if folder.is_dir() and any((folder / m).is_file() for m in _TOKENIZER_MARKERS):
            return folder
    return None


@dataclass(frozen=True)
class _Source:
    component: str
    path: Path
    library: bool  # a folder in diffusers / transformers format (else a Wan file)


def _sources(base_dir: Path, cfg: Mapping) -> dict[str, _Source | None]:
    """Where each component is in base_dir: <component>/config.json (library format) first, then
    the Wan file named by base_config.json (else the released name)."""
    found: dict[str, _Source | None] = {}
    for component in COMPONENTS:
        if _is_library_dir(base_dir / component):
            found[component] = _Source(component, base_dir / component, True)
            continue
        name = cfg.get(component, {}).get("file", WAN_FILES[component])
        path = base_dir / str(name)
        found[component] = _Source(component, path, False) if path.is_file() else None
    return found


def _check_library_dir(source: _Source) -> None:
    """A library-format component must at least have a config of the right class and weights."""
    cls = _LIBRARY[source.component]
    try:
        if cls is AutoencoderKLWan:
            kind = AutoencoderKLWan.load_config(source.path).get("_class_name")
            wanted = cls.__name__
        else:
            kind, wanted = cls.config_class.from_pretrained(source.path).model_type, cls.config_class.model_type
    except Exception as exc:
        raise BadInput(f"{source.path}: not a {cls.__name__} folder ({_one_line(exc)}); write it with "
                       "save_pretrained or give the Wan file instead") from None
    if kind != wanted:  # e.g. a whole CLIPModel, or a T5 rather than umT5 encoder
        raise BadInput(f"{source.path}: config.json is for {kind!r}, not {wanted!r} ({cls.__name__}); give the "
                       f"{source.component} in that format or the Wan file instead")
    if not any(source.path.glob("*.safetensors")):
        raise BadInput(f"{source.path}: no .safetensors weights beside config.json; write it with "
                       "save_pretrained(safe_serialization=True)")


def component_from_wan(source_file: Path, component: str, cfg: Mapping | None = None,
                       dtype: torch.dtype | None = None) -> torch.nn.Module:
    """One component from its Wan file; `cfg` is base_config.json (or {} for the full sizes)."""
    cfg = cfg or {}
    entry = cfg.get(component, {})
    state = read_wan_pth(source_file, f"{_WHAT[component]} ({WAN_FILES[component]})")
    if component == VAE:
        return vae_from_wan(state, entry.get("kwargs"), entry.get("latents_mean"), entry.get("latents_std"),
                            dtype, str(source_file))
    return _FROM_WAN[component](state, entry.get("kwargs"), dtype, str(source_file))


def _save(model: torch.nn.Module, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)


def _replace_dir(staged: Path, target: Path) -> None:
    """Move a finished folder into place; an older one is renamed away first and removed after, so
    the target is never half-written."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(old)
    staged.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert_base(base_dir: str | Path, out_dir: str | Path, need: Iterable[str] = COMPONENTS,
                 dtype: torch.dtype | None = None) -> dict[str, str]:
    """Write the base's components in library format: out_dir/{vae,text_encoder,image_encoder}/
    (save_pretrained, safetensors) and out_dir/tokenizer/ when base_dir has the umT5 tokenizer.

    Each component comes from base_dir/<component>/ when that already holds a library-format
    folder (copied), else from its Wan file (converted). The components in `need` must be there
    (BadInput naming every missing file); the others are converted when present. Everything is
    staged beside out_dir and moved in at the end, so bad input writes nothing.
    dtype: None keeps each file's dtype. Returns {component: what was done}.
    """
    base_dir, out_dir = Path(base_dir).expanduser(), Path(out_dir).expanduser()
    need = list(need)
    unknown = [n for n in need if n not in COMPONENTS]
    if unknown:
        raise BadInput(f"convert_base: unknown component(s) {_few(unknown)}; choose from {', '.join(COMPONENTS)}")
    if not base_dir.is_dir():
        raise BadInput(f"{base_dir}: no such folder; give the local Wan2.1 base folder "
                       "(alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control)")
    cfg = read_base_config(base_dir)
    sources = _sources(base_dir, cfg)
    missing = [c for c in need if sources[c] is None]
    if missing:
        files = ", ".join(str(base_dir / str(cfg.get(c, {}).get("file", WAN_FILES[c]))) for c in missing)
        raise BadInput(f"{base_dir}: missing {files} (or {'/, '.join(missing)}/ in library format); download the "
                       "Wan2.1 base (alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control) into this folder")
    present = [s for s in sources.values() if s is not None]
    for source in present:
        if source.library:
            _check_library_dir(source)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    done: dict[str, str] = {}
    try:
        for source in present:
            target = staging / source.component
            if source.library:
                shutil.copytree(source.path, target)
                done[source.component] = f"copied from {source.path}"
            else:
                model = component_from_wan(source.path, source.component, cfg, dtype)
                _save(model, target)
                del model  # the next component may be as large (T5-XXL is 11 GB in bfloat16)
                done[source.component] = f"converted from {source.path}"
        tokenizer = _tokenizer_dir(base_dir)
        if tokenizer is not None:
            shutil.copytree(tokenizer, staging / TOKENIZER)
            done[TOKENIZER] = f"copied from {tokenizer}"
        if not out_dir.exists():
            staging.rename(out_dir)
            staging = None
        else:
            for name in list(done):
                _replace_dir(staging / name, out_dir / name)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return done


# --- loading converted components ----------------------------------------------------------------------

@dataclass
class BaseComponents:
    """The base's frozen helpers in library form; None where the folder has no such component."""

    vae: AutoencoderKLWan | None = None
    text_encoder: UMT5EncoderModel | None = None
    image_encoder: CLIPVisionModel | None = None
    tokenizer_dir: Path | None = None


def load_component(folder: str | Path, component: str, flag: str = "--base") -> torch.nn.Module:
    """One library-format component folder (as convert_base writes it), in eval mode.

    The VAE is read as gdrive reads every diffusers VAE (float32); the transformers models keep
    the dtype they were saved in.
    """
    folder = Path(folder)
    if not _is_library_dir(folder):
        raise BadInput(f"{flag} {folder}: no config.json; convert the Wan base first (convert_base)")
    cls = _LIBRARY[component]
    if cls is AutoencoderKLWan:
        return _load_diffusers(AutoencoderKLWan, folder, str(folder), flag)
    try:
        model = cls.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # OSError, ValueError, safetensors and size-mismatch errors alike
        raise BadInput(f"{flag} {folder}: cannot load {cls.__name__} ({_one_line(exc)}); convert the Wan base "
                       "again (convert_base)") from None
    return model.eval()


def load_base_components(folder: str | Path, flag: str = "--base") -> BaseComponents:
    """The components present in a folder written by convert_base (at least one)."""
    folder = Path(folder)
    found = {c: load_component(folder / c, c, flag) for c in COMPONENTS if _is_library_dir(folder / c)}
    if not found:
        raise BadInput(f"{flag} {folder}: no {', '.join(c + '/' for c in COMPONENTS)}; convert the Wan base "
                       "first (convert_base)")
    tokenizer = folder / TOKENIZER
    return BaseComponents(**found, tokenizer_dir=tokenizer if tokenizer.is_dir() else None)


# --- the official calls --------------------------------------------------------------------------------

def _component(m, component: str, caller: str) -> torch.nn.Module:
    """m.<component>, or the component of a convert_base folder when m is a path."""
    if isinstance(m, (str, Path)):
        return load_component(Path(m) / component, component, caller)
    model = getattr(m, component, None)
    if model is None:
        if isinstance(m, VideoModel):
            raise BadInput(f"{caller}: the video model has no {component}; import it with its Wan2.1 base "
                           "(gdrive import-weights --format geniedrive-video ... --base DIR) and load it with "
                           "load_video_model")
        raise BadInput(f"{caller}: {type(m).__name__} has no {component}; convert the Wan base (convert_base) "
                       "and load it (load_base_components)")
    if not isinstance(model, _LIBRARY[component]):
        raise BadInput(f"{caller}: {component} is a {type(model).__name__}, not a {_LIBRARY[component].__name__}")
    return model


def _tensor(caller: str, name: str, value, like: torch.nn.Module, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise BadInput(f"{caller}: {name} must be a tensor or numpy array, not {type(value).__name__}")
    param = next(like.parameters())
    return value.to(device=param.device, dtype=dtype or param.dtype)


def _expect(caller: str, name: str, tensor: torch.Tensor, shape: tuple) -> None:
    """shape entries None match anything."""
    if tensor.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, tensor.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise BadInput(f"{caller}: {name} has shape {list(tensor.shape)}, expected {want}")


def _scale(vae: AutoencoderKLWan, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official (mean, 1 / std), computed in float32 and then cast, as the official wrapper does."""
    mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, dtype=torch.float32)
    return tuple(t.to(like.device, like.dtype).view(1, -1, 1, 1, 1) for t in (mean, inv_std))


def official_vae_posterior(m, video) -> tuple[torch.Tensor, torch.Tensor]:
    """The official `vae.encode(video)[0]`: (mean, logvar), each [B, z, 1 + (F-1)/4, H/8, W/8].

    video [B, 3, F, H, W] in [-1, 1], F = 4k + 1. The mean is normalised, (mu - latents_mean) *
    (1 / latents_std); the log-variance is the raw one clamped to [-30, 20], as in the official
    distribution (its std, exp(logvar / 2), belongs to the raw latent).
    """
    caller = "official_vae_encode"
    vae = _component(m, VAE, caller)
    video = _tensor(caller, "video", video, vae)
    _expect(caller, "video", video, (None, 3, None, None, None))
    t, s = vae.config.scale_factor_temporal, vae.config.scale_factor_spatial
    frames, height, width = video.shape[2:]
    if (frames - 1) % t or height % s or width % s:
        raise BadInput(f"{caller}: video of {frames} frames of {height} x {width}; the VAE needs {t}k + 1 frames "
                       f"and sides that are multiples of {s}")
    dist = vae.encode(video).latent_dist
    mean, inv_std = _scale(vae, dist.mean)
    return (dist.mean - mean) * inv_std, dist.logvar


def official_vae_encode(m, video) -> torch.Tensor:
    """`vae.encode(video)[0].mode()` of the official VAE, as the pipeline calls it: video
    [B, 3, F, H, W] in [-1, 1] -> normalised latent mean [B, z, 1 + (F-1)/4, H/8, W/8]."""
    return official_vae_posterior(m, video)[0]


def official_vae_decode(m, latent) -> torch.Tensor:
    """`vae.decode(latent).sample` of the official VAE: latent [B, z, F', h, w] in the normalised
    space (un-normalised here, z / (1 / std) + mean, as the official decode does) -> video
    [B, 3, 1 + 4(F'-1), 8h, 8w], decoded frame by frame and clamped to [-1, 1]."""
    caller = "official_vae_decode"
    vae = _component(m, VAE, caller)
    latent = _tensor(caller, "latent", latent, vae)
    _expect(caller, "latent", latent, (None, vae.config.z_dim, None, None, None))
    mean, inv_std = _scale(vae, latent)
    return vae.decode(latent / inv_std + mean).sample


def official_text_encode(m, ids, mask) -> torch.Tensor:
    """`text_encoder(ids, attention_mask=mask)[0]` of the official umT5: ids [B, L] int64 token ids
    (the pipeline pads to 512), mask [B, L] 1 on real tokens -> [B, L, dim]. Positions where mask
    = 0 are computed too (the pipeline drops them)."""
    caller = "official_text_encode"
    encoder = _component(m, TEXT_ENCODER, caller)
    ids = _tensor(caller, "ids", ids, encoder, torch.long)
    mask = _tensor(caller, "mask", mask, encoder, torch.long)
    _expect(caller, "ids", ids, (None, None))
    _expect(caller, "mask", mask, tuple(ids.shape))
    vocab = encoder.config.vocab_size
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise BadInput(f"{caller}: token ids must lie in [0, {vocab}); tokenise with the model's umT5 tokenizer")
    return encoder(input_ids=ids, attention_mask=mask).last_hidden_state


def official_image_encode(m, pixels) -> torch.Tensor:
    """`clip.model.visual(pixels, use_31_block=True)` of the official CLIP: pixels [B, 3, S, S]
    (S = 224), CLIP-normalised (see clip_preprocess) -> [B, 1 + (S/14)^2, width] = [B, 257, 1280] at
    full size: the output of every block but the last, before the final norm."""
    caller = "official_image_encode"
    encoder = _component(m, IMAGE_ENCODER, caller)
    pixels = _tensor(caller, "pixels", pixels, encoder)
    size = encoder.config.image_size
    _expect(caller, "pixels", pixels, (None, 3, size, size))
    return image_features(encoder, pixels)


def image_features(encoder: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """CLIPVisionModel pixels [B, 3, S, S] (clip_preprocess) -> [B, 1 + (S/p)^2, width]: the hidden
    states after every vision block but the last (the official `use_31_block=True` readout)."""
    return encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]


def clip_preprocess(images, size: int = OFFICIAL_CLIP_KWARGS["image_size"]) -> torch.Tensor:
    """The official CLIP preprocessing: images [N, 3, H, W] in [-1, 1] -> [N, 3, size, size].

    Each image is squashed to size x size by bicubic interpolation (align_corners=False, no
    antialiasing, no aspect-ratio keeping and no crop) while still in [-1, 1], then mapped to
    [0, 1] and normalised with the CLIP mean / std; bicubic overshoot is kept (no clamp). The
    official pipeline passes views as [3, V, H, W]: give `views.transpose(0, 1)`.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise BadInput("clip_preprocess: images must be a floating-point tensor or numpy array")
    _expect("clip_preprocess", "images", images, (None, 3, None, None))
    x = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    x = x * 0.5 + 0.5
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std

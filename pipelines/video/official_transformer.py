"""The official GenieDrive video transformer (occ_render `WanTransformer3DModel`) in gdrive.

The official model is a Wan2.1 transformer with multi-view attention after blocks i % 3 == 0 and
the last one. gdrive's `MultiViewWanTransformer` holds it exactly:

- `official_transformer_kwargs(config)`: an official config.json -> `MultiViewWanTransformer`
  arguments. `model_type='t2v'` is the text-only layout; `'i2v'` adds the CLIP image branch
  (`img_emb` = diffusers' image embedder, 1280 -> dim, and per block the image key/value
  projections), whose first 257 context tokens are always the image tokens. `add_ref_conv` adds
  the first-frame `ref_conv`.
- `official_to_gdrive` / `gdrive_to_official`: pure key renames, one rule per tensor; every key
  must have a rule. The multi-view modules of official block N (`blocks.N.cross_view_attn`)
  become gdrive's `multiview.N.attn`.
- `transformer_from_official(config, state)` / `load_official_transformer(folder)`: a model
  holding the official weights; the key set and every shape are checked against the config first.
- `official_forward(m, x, t, context, y, ...)`: the official call
  `m(x, t, context_list, seq_len, clip_fea=..., y=..., full_ref=...)` on padded batch tensors.

Anything wrong with the input (keys, shapes, an unknown or unsupported config) raises BadInput
with one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

from ..errors import BadInput
from .loading import VideoModel, _one_line, _read_state_dict
from .model import MultiViewWanTransformer, default_multiview_blocks

# The official model's fixed parts: a 6-view ring (FL, F, FR, BR, B, BL), eta 0.2 on the
# multi-view residual, CLIP ViT-H features (257 tokens of width 1280), RoPE tables of 1024 positions.
OFFICIAL_NUM_VIEWS = 6
OFFICIAL_ETA = 0.2
CLIP_TOKENS = 257
CLIP_DIM = 1280
ROPE_MAX_SEQ_LEN = 1024
MODEL_TYPES = ("t2v", "i2v")

# Constructor defaults of the official class, for fields a config.json leaves out.
_OFFICIAL_DEFAULTS: dict[str, object] = {
    "model_type": "t2v", "patch_size": [1, 2, 2], "text_len": 512, "in_dim": 16, "dim": 2048, "ffn_dim": 8192,
    "freq_dim": 256, "text_dim": 4096, "out_dim": 16, "num_heads": 16, "num_layers": 32, "window_size": [-1, -1],
    "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6, "add_control_adapter": False, "add_ref_conv": False,
    "in_dim_ref_conv": 16, "cross_attn_type": None,
}
_INT_FIELDS = ("dim", "num_heads", "num_layers", "ffn_dim", "freq_dim", "text_dim", "text_len", "in_dim", "out_dim",
               "in_dim_ref_conv")

# --- key map ----------------------------------------------------------------------------------
# (official, gdrive) name templates: {n} a block index, {w} weight or bias.
_ATTN = (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0"), ("norm_q", "norm_q"),
         ("norm_k", "norm_k"), ("k_img", "add_k_proj"), ("v_img", "add_v_proj"), ("norm_k_img", "norm_added_k"))
_ATTN_MODULES = (("blocks.{n}.self_attn", "blocks.{n}.attn1"), ("blocks.{n}.cross_attn", "blocks.{n}.attn2"),
                 ("blocks.{n}.cross_view_attn", "multiview.{n}.attn"))
_PAIRS: tuple[tuple[str, str], ...] = (
    ("patch_embedding.{w}", "patch_embedding.{w}"),
    ("ref_conv.{w}", "ref_conv.{w}"),
    ("text_embedding.0.{w}", "condition_embedder.text_embedder.linear_1.{w}"),
    ("text_embedding.2.{w}", "condition_embedder.text_embedder.linear_2.{w}"),
    ("time_embedding.0.{w}", "condition_embedder.time_embedder.linear_1.{w}"),
    ("time_embedding.2.{w}", "condition_embedder.time_embedder.linear_2.{w}"),
    ("time_projection.1.{w}", "condition_embedder.time_proj.{w}"),
    ("img_emb.proj.0.{w}", "condition_embedder.image_embedder.norm1.{w}"),
    ("img_emb.proj.1.{w}", "condition_embedder.image_embedder.ff.net.0.proj.{w}"),
    ("img_emb.proj.3.{w}", "condition_embedder.image_embedder.ff.net.2.{w}"),
    ("img_emb.proj.4.{w}", "condition_embedder.image_embedder.norm2.{w}"),
    ("head.modulation", "scale_shift_table"),
    ("head.head.{w}", "proj_out.{w}"),
    ("blocks.{n}.modulation", "blocks.{n}.scale_shift_table"),
    # the official norm3 is the affine cross-attention norm, diffusers' norm2; the other block
    # norms (and the multi-view norm4) have no weights
    ("blocks.{n}.norm3.{w}", "blocks.{n}.norm2.{w}"),
    ("blocks.{n}.ffn.0.{w}", "blocks.{n}.ffn.net.0.proj.{w}"),
    ("blocks.{n}.ffn.2.{w}", "blocks.{n}.ffn.net.2.{w}"),
) + tuple((f"{om}.{o}.{{w}}", f"{gm}.{g}.{{w}}") for om, gm in _ATTN_MODULES for o, g in _ATTN)


def _pattern(template: str) -> re.Pattern:
    text = re.escape(template).replace(r"\{n\}", r"(?P<n>\d+)").replace(r"\{w\}", r"(?P<w>weight|bias)")
    return re.compile(text)


_TO_GDRIVE = tuple((_pattern(o), g) for o, g in _PAIRS)
_TO_OFFICIAL = tuple((_pattern(g), o) for o, g in _PAIRS)


def _rename(key: str, rules) -> str | None:
    for pattern, template in rules:
        found = pattern.fullmatch(key)
        if found:
            return template.format(**found.groupdict())
    return None


def _renamed(state: Mapping[str, torch.Tensor], rules, what: str, where: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        new = _rename(key, rules)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        count = f"{len(unknown)} keys are" if len(unknown) > 1 else "1 key is"
        raise BadInput(f"{where}: {count} not {what} transformer keys ({_few(sorted(unknown))})")
    return out


def official_to_gdrive(state: Mapping[str, torch.Tensor],
                       where: str = "official state dict") -> dict[str, torch.Tensor]:
    """Official occ_render key names -> MultiViewWanTransformer names (same tensors, not copied)."""
    return _renamed(state, _TO_GDRIVE, "official GenieDrive video", where)


def gdrive_to_official(state: Mapping[str, torch.Tensor], where: str = "gdrive state dict") -> dict[str, torch.Tensor]:
    """MultiViewWanTransformer names -> official occ_render names (the inverse of `official_to_gdrive`)."""
    return _renamed(state, _TO_OFFICIAL, "gdrive MultiViewWanTransformer", where)


def _few(keys: list[str], shown: int = 3) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


# --- config -----------------------------------------------------------------------------------

def _field(cfg: Mapping, name: str):
    return cfg[name] if name in cfg else _OFFICIAL_DEFAULTS[name]


def _check_official_config(cfg: Mapping, where: str) -> None:
    """One-line BadInput for config values the official class would not build or gdrive cannot hold."""
    model_type = _field(cfg, "model_type")
    if model_type not in MODEL_TYPES:
        raise BadInput(f"{where}: model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}; "
                       "this is not a GenieDrive occ_render transformer config")
    for name in _INT_FIELDS:
        value = _field(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInput(f"{where}: {name} must be a positive integer, not {value!r}")
    dim, heads = _field(cfg, "dim"), _field(cfg, "num_heads")
    if dim % heads or (dim // heads) % 2:
        raise BadInput(f"{where}: dim {dim} must split into {heads} heads of even width")
    patch = _field(cfg, "patch_size")
    if not isinstance(patch, (list, tuple)) or len(patch) != 3 or not all(isinstance(p, int) and p > 0 for p in patch):
        raise BadInput(f"{where}: patch_size must be three positive integers, not {patch!r}")
    eps = _field(cfg, "eps")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise BadInput(f"{where}: eps must be a number in (0, 1), not {eps!r}")
    # the parts gdrive does not implement: each changes the computation, so refuse rather than ignore
    window = _field(cfg, "window_size")
    if not isinstance(window, (list, tuple)) or list(window) != [-1, -1]:
        raise BadInput(f"{where}: window_size {window!r} (local attention) is not supported; only [-1, -1]")
    if _field(cfg, "qk_norm") is not True:
        raise BadInput(f"{where}: qk_norm must be true (gdrive's Wan attention always normalises q and k)")
    if _field(cfg, "add_control_adapter"):
        raise BadInput(f"{where}: add_control_adapter (camera control adapter) is not supported")
    wanted = {"t2v": "t2v_cross_attn", "i2v": "i2v_cross_attn"}[model_type]
    if _field(cfg, "cross_attn_type") not in (None, wanted):
        raise BadInput(f"{where}: cross_attn_type {cfg['cross_attn_type']!r} is not supported with "
                       f"model_type {model_type!r} (only {wanted})")


def official_transformer_kwargs(cfg: Mapping, where: str = "config.json") -> dict:
    """An official config.json (dict) -> `MultiViewWanTransformer` keyword arguments.

    Missing fields take the official constructor's defaults. BadInput names the first bad field.
    """
    if not isinstance(cfg, Mapping):
        raise BadInput(f"{where}: not a JSON object")
    _check_official_config(cfg, where)
    f = lambda name: _field(cfg, name)  # noqa: E731
    dim, heads, layers = f("dim"), f("num_heads"), f("num_layers")
    i2v = f("model_type") == "i2v"
    return {
        "patch_size": [int(p) for p in f("patch_size")],
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": f("in_dim"),
        "out_channels": f("out_dim"),
        "text_dim": f("text_dim"),
        "freq_dim": f("freq_dim"),
        "ffn_dim": f("ffn_dim"),
        "num_layers": layers,
        "cross_attn_norm": bool(f("cross_attn_norm")),
        "qk_norm": "rms_norm_across_heads",
        "eps": float(f("eps")),
        "image_dim": CLIP_DIM if i2v else None,
        "added_kv_proj_dim": dim if i2v else None,
        "image_context_len": CLIP_TOKENS if i2v else None,
        "rope_max_seq_len": ROPE_MAX_SEQ_LEN,
        "num_views": OFFICIAL_NUM_VIEWS,
        "multiview_blocks": default_multiview_blocks(layers),
        "multiview_eta": OFFICIAL_ETA,
        "add_ref_conv": bool(f("add_ref_conv")),
        "in_dim_ref_conv": f("in_dim_ref_conv"),
    }


# --- weights ----------------------------------------------------------------------------------

def check_official_state_dict(state: Mapping[str, torch.Tensor], kwargs: dict, where: str) -> None:
    """BadInput unless `state` (official names) has exactly the tensors, and shapes, of the model
    `kwargs` builds. Checked on the meta device: no memory, no initialisation."""
    with torch.device("meta"):
        own = gdrive_to_official(MultiViewWanTransformer(**kwargs).state_dict(), "MultiViewWanTransformer")
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        parts = ([f"missing {_few(missing)}"] if missing else []) + ([f"unexpected {_few(extra)}"] if extra else [])
        raise BadInput(f"{where}: weights do not fit their config ({'; '.join(parts)}); "
                       "pass the config.json saved with these weights")
    for key in sorted(own):
        got = state[key]
        if not isinstance(got, torch.Tensor) or not got.is_floating_point():
            raise BadInput(f"{where}: '{key}' is not a floating-point tensor; re-export the weights")
        if tuple(got.shape) != tuple(own[key].shape):
            raise BadInput(f"{where}: '{key}' has shape {tuple(got.shape)}, the config needs {tuple(own[key].shape)}; "
                           "pass the config.json saved with these weights")


def transformer_from_official(cfg: Mapping, state: Mapping[str, torch.Tensor],
                              where: str = "official transformer") -> MultiViewWanTransformer:
    """A MultiViewWanTransformer (float32, eval) holding an official state dict of config `cfg`.

    Built on the meta device and filled with the given tensors (no random initialisation of a
    1.6 B-parameter model first); only the rotary tables, which are not weights, are computed.
    """
    kwargs = official_transformer_kwargs(cfg, f"{where} config")
    check_official_state_dict(state, kwargs, where)
    with torch.device("meta"):
        model = MultiViewWanTransformer(**kwargs)
    model.load_state_dict(official_to_gdrive(state, where), strict=True, assign=True)
    model.rope = WanRotaryPosEmbed(kwargs["attention_head_dim"], tuple(kwargs["patch_size"]),
                                   kwargs["rope_max_seq_len"])
    return model.float().eval()


def load_official_transformer(folder: str | Path, flag: str = "--official-transformer") -> MultiViewWanTransformer:
    """An official transformer folder (config.json + diffusion_pytorch_model.safetensors)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    try:
        cfg = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{flag} {config_path}: cannot read the config ({_one_line(exc)}); pass the official "
                       "transformer folder (config.json + diffusion_pytorch_model.safetensors)") from None
    try:
        state = _read_state_dict(folder)
    except Exception as exc:  # missing file, corrupt safetensors
        raise BadInput(f"{flag} {folder}: cannot read the weights ({_one_line(exc)}); pass the official "
                       "transformer folder (config.json + diffusion_pytorch_model.safetensors)") from None
    return transformer_from_official(cfg, state, f"{flag} {folder}")


# --- the official forward call ------------------------------------------------------------------

def _tensor(name: str, value, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise BadInput(f"official_forward: {name} must be a tensor or numpy array, not {type(value).__name__}")
    return value.to(device=device, dtype=dtype)


def _expect(name: str, tensor: torch.Tensor, shape: tuple) -> None:
    """shape entries None match anything."""
    ok = tensor.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, tensor.shape))
    if not ok:
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise BadInput(f"official_forward: {name} has shape {list(tensor.shape)}, expected {want}")


def official_forward(m: MultiViewWanTransformer | VideoModel, x, t, context, y, clip_fea=None, full_ref=None,
                     text_len: int = 512) -> torch.Tensor:
    """The official `m(x, t, context_list, seq_len, clip_fea=clip_fea, y=y, full_ref=full_ref)`.

    x [N, 16, F, h, w] noisy latents, N = groups x 6 views (FL, F, FR, BR, B, BL); t [N] timesteps
    on the 0..1000 scale; context [N, L, text_dim] text embeddings, L <= text_len (zero-padded to
    text_len here, as the official model pads its list; the padding is not masked); y [N, 32, F, h, w]
    control | first-frame latents (the model input is concat(x, y) on channels); clip_fea
    [N, 257, 1280] CLIP features (i2v; without them the official model reads the first 257 text
    tokens as image tokens, and so does this); full_ref [N, 16, h, w] first-frame latents for
    ref_conv. seq_len is the exact token count, as the official pipeline passes it.
    Returns [N, 16, F, h, w] (noise - x0). Tensors or numpy arrays; grad mode is the caller's.
    """
    model = m.transformer if isinstance(m, VideoModel) else m
    if not isinstance(model, MultiViewWanTransformer):
        raise BadInput(f"official_forward: m must be a MultiViewWanTransformer or VideoModel, not {type(m).__name__}")
    param = model.patch_embedding.weight
    device, dtype = param.device, param.dtype
    cfg = model.config
    x = _tensor("x", x, device, dtype)
    y = _tensor("y", y, device, dtype)
    _expect("x", x, (None, cfg.out_channels, None, None, None))
    n, _, frames, h, w = x.shape
    _expect("y", y, (n, cfg.in_channels - x.shape[1], frames, h, w))
    if n % cfg.num_views:
        raise BadInput(f"official_forward: batch {n} is not a whole number of {cfg.num_views}-view groups")
    t = _tensor("t", t, device, torch.float32)
    t = t.expand(n) if t.ndim == 0 else t
    _expect("t", t, (n,))
    context = _tensor("context", context, device, dtype)
    _expect("context", context, (n, None, cfg.text_dim))
    if context.shape[1] > text_len:
        raise BadInput(f"official_forward: context has {context.shape[1]} tokens, more than text_len {text_len}")
    context = torch.nn.functional.pad(context, (0, 0, 0, text_len - context.shape[1]))
    if clip_fea is not None:
        if cfg.image_dim is None:
            raise BadInput("official_forward: clip_fea given, but the model has no CLIP image branch (model_type t2v)")
        clip_fea = _tensor("clip_fea", clip_fea, device, dtype)
        _expect("clip_fea", clip_fea, (n, CLIP_TOKENS, cfg.image_dim))
    if full_ref is not None:
        if model.ref_conv is None:
            raise BadInput("official_forward: full_ref given, but the model has no ref_conv (add_ref_conv false)")
        full_ref = _tensor("full_ref", full_ref, device, dtype)
        _expect("full_ref", full_ref, (n, cfg.in_dim_ref_conv, h, w))
    out = model(torch.cat([x, y], dim=1), t, context, encoder_hidden_states_image=clip_fea, full_ref=full_ref,
                return_dict=False)[0]
    return out

"""Video models on disk: a base Wan2.1 widened for the condition channels, and our own saved models.

A saved video model is a folder in diffusers layout:

    <folder>/video_config.json                   the gdrive VideoConfig (sizes, layout, views, flow, sampling)
    <folder>/transformer/config.json             MultiViewWanTransformer (Wan + multi-view modules)
    <folder>/transformer/diffusion_pytorch_model.safetensors
    <folder>/vae/config.json, vae/diffusion_pytorch_model.safetensors   AutoencoderKLWan
    <folder>/text_encoder/                       optional: transformers UMT5EncoderModel
    <folder>/image_encoder/                      optional: transformers CLIPVisionModel
    <folder>/tokenizer/                          optional: the umT5 tokenizer files

Only video_config.json and transformer/ are required: `gdrive import-weights` without a base writes
no vae/, and the encoders are there only when a base provided them (prompts can arrive as
embeddings instead). What a task needs and lacks is reported by that task.

A base Wan2.1 (e.g. `Wan-AI/Wan2.1-T2V-1.3B-Diffusers`, or a local copy of it: a folder with
transformer/ and vae/, or a transformer folder alone) is read as diffusers writes it (config.json
+ safetensors, sharded or not); hub ids go through huggingface_hub's cache.
Its 16-channel patch embedding is widened to 48: the new input channels (condition and first-frame
latents) get zero weights, so the widened model starts as exactly the base on the noisy latents.
A base starts text-only configs only (`wan2.1-1.3b-t2v`): the released i2v layout's image branch and
ref_conv would start untrained, and fine-tuning does not feed them; the released weights come in
through `gdrive import-weights --format geniedrive-video` instead.
Anything the user can fix (missing folder, corrupt weights, wrong sizes) raises BadInput with one
line.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from huggingface_hub import snapshot_download
from safetensors.torch import load_file

from ..errors import BadInput
from ..weights import check_fit
from .configs import VideoConfig
from .latents import build_vae
from .model import MultiViewWanTransformer, build_transformer, transformer_kwargs

VIDEO_CONFIG_FILE = "video_config.json"
TRANSFORMER_DIR = "transformer"
VAE_DIR = "vae"
TEXT_ENCODER_DIR = "text_encoder"
IMAGE_ENCODER_DIR = "image_encoder"
TOKENIZER_DIR = "tokenizer"
IMPORT_HINT = "gdrive import-weights --format geniedrive-video ... --base DIR"
WEIGHTS_NAME = "diffusion_pytorch_model"
WEIGHTS_HINT = "a diffusers folder with config.json and diffusion_pytorch_model.safetensors"


@dataclass
class VideoModel:
    """The pieces `generate_video` and `finetune_step` need, and the optional frozen helpers.

    vae is None for a model imported without its base; text_encoder (transformers
    UMT5EncoderModel), image_encoder (CLIPVisionModel) and tokenizer_dir (the umT5 tokenizer
    files) are None where the folder has none or they were not asked for.
    """

    config: VideoConfig
    transformer: MultiViewWanTransformer
    vae: AutoencoderKLWan | None = None
    text_encoder: torch.nn.Module | None = None
    image_encoder: torch.nn.Module | None = None
    tokenizer_dir: Path | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "VideoModel":
        for part in (self.transformer, self.vae, self.text_encoder, self.image_encoder):
            if part is not None:
                part.to(device=device, dtype=dtype)
        return self


def build_video_model(config: VideoConfig, seed: int = 0) -> VideoModel:
    """Random weights (tests and debug runs)."""
    return VideoModel(config, build_transformer(config, seed), build_vae(config, seed + 1))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def _read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a diffusers folder: one safetensors file, or shards listed in an index."""
    single = folder / f"{WEIGHTS_NAME}.safetensors"
    if single.is_file():
        return load_file(single)
    index = folder / f"{WEIGHTS_NAME}.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(load_file(folder / shard))
        return state
    raise FileNotFoundError(f"no {single.name} or {index.name}")


def _without_ignored(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the keys diffusers itself ignores when loading `cls` (e.g. Wan's old `norm_added_q`)."""
    ignored = getattr(cls, "_keys_to_ignore_on_load_unexpected", None) or []
    return {k: v for k, v in state.items() if not any(re.search(p, k) for p in ignored)}


def _read_model(cls, folder: Path):
    """cls from a diffusers folder (config.json + safetensors), strictly, on the CPU in float32.

    Not `cls.from_pretrained`: for models with fp32-kept modules (Wan's transformer) diffusers
    requires `accelerate` there, which gdrive does not depend on. The files are the same.
    """
    model = cls.from_config(cls.load_config(folder))
    state = _without_ignored(cls, _read_state_dict(folder))
    check_fit(state, model.state_dict(), str(folder), hint=f"pass {WEIGHTS_HINT} of this model")
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def _cannot_load(what: str, where: str, flag: str, exc: Exception) -> BadInput:
    return BadInput(f"{flag} {where}: cannot load {what} ({_one_line(exc)}); pass {WEIGHTS_HINT}")


def _load(cls, folder: str | Path, where: str, flag: str):
    """`_read_model` with every failure turned into a one-line BadInput naming the folder."""
    try:
        return _read_model(cls, Path(folder))
    except BadInput:
        raise
    except Exception as exc:  # OSError, ValueError, safetensors, JSON and state-dict errors alike
        raise _cannot_load(cls.__name__, where, flag, exc) from None


def _locate(source: str | Path, component: str, flag: str) -> tuple[Path, str]:
    """(local folder, printable location) of one component (transformer/ or vae/) of a base model.

    A local folder may be a whole Wan2.1 diffusers folder (with <component>/) or the component's
    folder itself. Anything else of the form owner/name is a hub id, fetched into the hub cache.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / component / "config.json").is_file():
            return path / component, str(path / component)
        if (path / "config.json").is_file():
            return path, str(path)
        raise BadInput(f"{flag} {path}: no {component}/config.json or config.json; pass {WEIGHTS_HINT} "
                       f"(or a Wan2.1 diffusers folder with {component}/)")
    text = str(source)
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.exists()
    if not looks_like_hub_id or Path(text.split("/")[0]).is_dir():
        raise BadInput(f"{flag} {source}: no such folder; pass a local Wan2.1 diffusers folder or a hub id "
                       "such as Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    try:
        local = snapshot_download(text, allow_patterns=[f"{component}/*"])
    except Exception as exc:  # offline, unknown repo, gated repo, interrupted download
        raise BadInput(f"{flag} {text}: cannot fetch {component}/ from the hub ({_one_line(exc)}); "
                       f"download it (huggingface-cli download {text}) and pass the local folder") from None
    return Path(local) / component, f"{text} ({component}/)"


def _check_base(base: dict, config: VideoConfig, where: str, flag: str) -> None:
    """The base transformer's config.json must match the video config apart from input channels."""
    want = transformer_kwargs(config)
    keys = ("num_attention_heads", "attention_head_dim", "num_layers", "ffn_dim", "text_dim", "freq_dim",
            "out_channels")
    bad = [f"{k} {base.get(k)} (config {want[k]})" for k in keys if base.get(k) != want[k]]
    base_in = base.get("in_channels")
    if not isinstance(base_in, int) or base_in > want["in_channels"]:  # fewer is what widening is for
        bad.append(f"in_channels {base_in} (config at most {want['in_channels']})")
    if list(base.get("patch_size") or []) != list(want["patch_size"]):
        bad.append(f"patch_size {base.get('patch_size')} (config {want['patch_size']})")
    if base.get("image_dim") is not None or base.get("added_kv_proj_dim") is not None:
        bad.append("image cross-attention (an I2V model; use a T2V base)")
    if base.get("add_ref_conv"):
        bad.append("ref_conv (a GenieDrive model; import it with gdrive import-weights --format geniedrive-video)")
    if bad:
        raise BadInput(f"{flag} {where}: base does not fit video config '{config.name}': {'; '.join(bad)}; "
                       "choose the matching --video-config or base")


def check_base_config(config: VideoConfig, flag: str = "--base") -> None:
    """A Wan2.1 diffusers base starts text-only configs only (see the module doc); BadInput with
    the way to the released layout otherwise. Checked before anything is fetched or read."""
    t = config.transformer
    if t.i2v or t.add_ref_conv:
        raise BadInput(f"{flag}: video config '{config.name}' is the released GenieDrive layout (CLIP image "
                       "cross-attention and ref_conv), which a Wan2.1 base lacks; "
                       "fine-tune a T2V base with --video-config wan2.1-1.3b-t2v, or import the released weights "
                       "(gdrive import-weights --format geniedrive-video) and continue them with --init NAME")


def widen_transformer(base_state: dict[str, torch.Tensor], config: VideoConfig, seed: int = 0) -> MultiViewWanTransformer:
    """A MultiViewWanTransformer holding a base Wan state dict, its patch embedding widened.

    Input channels the base lacks get zero weights (so on the base's channels the output is the
    base's, multi-view modules aside); the multi-view modules are freshly initialised from `seed`.
    """
    model = build_transformer(config, seed)
    old = base_state["patch_embedding.weight"]  # [C, C_in_base, pt, ph, pw]
    rest = {k: v for k, v in base_state.items() if k != "patch_embedding.weight"}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    leftover = [k for k in missing if not k.startswith("multiview.") and k != "patch_embedding.weight"]
    if leftover or unexpected:
        raise ValueError(f"not a Wan transformer state dict: missing {leftover[:3]}, unexpected {unexpected[:3]}")
    with torch.no_grad():
        model.patch_embedding.weight.zero_()
        model.patch_embedding.weight[:, : old.shape[1]] = old.to(model.patch_embedding.weight.dtype)
    return model.eval()


def load_base_transformer(source: str | Path, config: VideoConfig, flag: str = "--base",
                          seed: int = 0) -> MultiViewWanTransformer:
    """Load a Wan2.1 transformer (local folder or hub id) and widen it for `config`.

    The config is checked before the weights are read; the base is never built as a model of its
    own (one copy of the weights in memory).
    """
    check_base_config(config, flag)
    folder, where = _locate(source, TRANSFORMER_DIR, flag)
    try:
        base_config = dict(WanTransformer3DModel.load_config(folder))
    except Exception as exc:
        raise _cannot_load("WanTransformer3DModel", where, flag, exc) from None
    _check_base(base_config, config, where, flag)
    try:
        return widen_transformer(_without_ignored(WanTransformer3DModel, _read_state_dict(folder)), config, seed)
    except Exception as exc:
        raise _cannot_load("WanTransformer3DModel", where, flag, exc) from None


def load_base_vae(source: str | Path, config: VideoConfig, flag: str = "--base") -> AutoencoderKLWan:
    """Load the Wan2.1 VAE of a base model (local folder with vae/, or hub id)."""
    folder, where = _locate(source, VAE_DIR, flag)
    vae = _load(AutoencoderKLWan, folder, where, flag)
    if vae.config.z_dim != config.vae.z_dim:
        raise BadInput(f"{flag} {where}: VAE z_dim {vae.config.z_dim}, video config '{config.name}' needs "
                       f"{config.vae.z_dim}; choose the matching --video-config or base")
    return vae


def load_base_model(source: str | Path, config: VideoConfig, flag: str = "--base", seed: int = 0) -> VideoModel:
    """A video model to fine-tune, from a base Wan2.1 (transformer widened, VAE as is)."""
    return VideoModel(config, load_base_transformer(source, config, flag, seed), load_base_vae(source, config, flag))


def save_video_model(model: VideoModel, folder: Path) -> None:
    """Write `model` into `folder` (diffusers layout, see module doc), its config last; the parts
    that are None are left out. The caller makes it atomic."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.transformer.save_pretrained(folder / TRANSFORMER_DIR, safe_serialization=True)
    for sub, part in ((VAE_DIR, model.vae), (TEXT_ENCODER_DIR, model.text_encoder),
                      (IMAGE_ENCODER_DIR, model.image_encoder)):
        if part is not None:
            with quiet_hf_progress():
                part.save_pretrained(folder / sub, safe_serialization=True)
    if model.tokenizer_dir is not None and Path(model.tokenizer_dir).resolve() != (folder / TOKENIZER_DIR).resolve():
        shutil.copytree(model.tokenizer_dir, folder / TOKENIZER_DIR, dirs_exist_ok=True)
    (folder / VIDEO_CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")


def _check_layout(transformer: MultiViewWanTransformer, config: VideoConfig, folder: Path, flag: str) -> None:
    """The saved transformer must be the one video_config.json describes (channels, views, layout)."""
    got, want = transformer.config, transformer_kwargs(config)
    keys = ("num_views", "in_channels", "out_channels", "text_dim", "image_dim", "image_context_len", "add_ref_conv")
    bad = [f"{k} {got.get(k)} (config {want[k]})" for k in keys if got.get(k) != want[k]]
    if bad:
        raise BadInput(f"{flag} {folder}: transformer and {VIDEO_CONFIG_FILE} disagree ({'; '.join(bad[:3])}); "
                       "re-run the command that wrote the model")


@contextlib.contextmanager
def quiet_hf_progress():
    """No transformers progress bars ("Loading weights", "Writing model shards") meanwhile."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _load_encoder(folder: Path, component: str, flag: str) -> torch.nn.Module:
    from .official_base import load_component  # transformers: only when there is one

    with quiet_hf_progress():
        return load_component(folder, component, flag)


def load_encoder(folder: Path, sub: str, flag: str = "--video-model") -> torch.nn.Module:
    """One frozen encoder (text_encoder/ or image_encoder/) of a video-model folder, on its own:
    callers that need it for one step load it then, not with the model."""
    return _load_encoder(Path(folder) / sub, sub, flag)


def has_part(folder: Path, sub: str) -> bool:
    """Whether a video-model folder holds the part `sub` (vae/, text_encoder/, image_encoder/)."""
    return (Path(folder) / sub / "config.json").is_file()


def require_image_encoder(folder: Path, config: VideoConfig, flag: str = "--video-model") -> None:
    """An i2v model needs CLIP features of its first frames: BadInput when the folder has no
    image_encoder/, or one (CLIP vision, read from its config.json, no weights) whose features the
    transformer does not take (width image_dim, image_tokens tokens)."""
    if not has_part(folder, IMAGE_ENCODER_DIR):
        raise BadInput(f"{flag} {folder}: an i2v model needs CLIP features of the first frames and has no "
                       f"{IMAGE_ENCODER_DIR}/; import it again with its base (gdrive import-weights --format "
                       "geniedrive-video ... --base DIR)")
    path = Path(folder) / IMAGE_ENCODER_DIR / "config.json"
    try:
        clip = json.loads(path.read_text())
        width, tokens = int(clip["hidden_size"]), (int(clip["image_size"]) // int(clip["patch_size"])) ** 2 + 1
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        raise BadInput(f"{flag} {path}: not a CLIP vision config ({type(exc).__name__}); import the model again "
                       "with its base (gdrive import-weights --format geniedrive-video ... --base DIR)") from None
    t = config.transformer
    if (tokens, width) != (t.image_tokens, t.image_dim):
        raise BadInput(f"{flag} {path}: the image encoder gives [{tokens}, {width}] features and the transformer "
                       f"takes [{t.image_tokens}, {t.image_dim}]; they are not one model: import the transformer "
                       "with the base it was trained with")


def load_video_model(folder: Path, flag: str = "--video-model", encoders: bool = True) -> VideoModel:
    """Read a folder written by `save_video_model` or `gdrive import-weights`; BadInput if it is
    missing or unreadable. Parts the folder lacks are None (vae/ too); `encoders=False` leaves the
    text and image encoders unread (a full-size umT5 is 11 GB), for callers that do not use them."""
    folder = Path(folder)
    config_path = folder / VIDEO_CONFIG_FILE
    if not config_path.is_file():
        raise BadInput(f"{flag} {folder}: no {VIDEO_CONFIG_FILE}; not a gdrive video model "
                       "(make one with `gdrive finetune-video` or `gdrive import-weights --format geniedrive-video`)")
    try:
        config = VideoConfig.from_dict(json.loads(config_path.read_text()), str(config_path))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{flag} {config_path}: not JSON ({exc}); re-run `gdrive finetune-video`") from None
    if not (folder / TRANSFORMER_DIR / "config.json").is_file():
        raise BadInput(f"{flag} {folder / TRANSFORMER_DIR}: missing; re-run `gdrive finetune-video` to rewrite the model")
    transformer = _load(MultiViewWanTransformer, folder / TRANSFORMER_DIR, str(folder / TRANSFORMER_DIR), flag)
    _check_layout(transformer, config, folder, flag)
    present = lambda sub: has_part(folder, sub)  # noqa: E731
    vae = _load(AutoencoderKLWan, folder / VAE_DIR, str(folder / VAE_DIR), flag) if present(VAE_DIR) else None
    if vae is not None and vae.config.z_dim != config.vae.z_dim:
        raise BadInput(f"{flag} {folder / VAE_DIR}: VAE z_dim {vae.config.z_dim}, {VIDEO_CONFIG_FILE} says "
                       f"{config.vae.z_dim}; re-run the command that wrote the model")
    text_encoder = image_encoder = None
    if encoders:
        if present(TEXT_ENCODER_DIR):
            text_encoder = _load_encoder(folder / TEXT_ENCODER_DIR, TEXT_ENCODER_DIR, flag)
        if present(IMAGE_ENCODER_DIR):
            image_encoder = _load_encoder(folder / IMAGE_ENCODER_DIR, IMAGE_ENCODER_DIR, flag)
    tokenizer = folder / TOKENIZER_DIR
    return VideoModel(config, transformer, vae, text_encoder, image_encoder, tokenizer if tokenizer.is_dir() else None)


def require_vae(model: VideoModel, folder: Path, flag: str = "--video-model") -> AutoencoderKLWan:
    """model.vae, or BadInput: a model imported without its base cannot encode or decode video."""
    if model.vae is None:
        raise BadInput(f"{flag} {folder}: has no vae/ (imported without its base), and video needs the VAE; "
                       f"import it again with the Wan2.1 base folder ({IMPORT_HINT})")
    return model.vae

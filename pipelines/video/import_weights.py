"""`gdrive import-weights --format geniedrive-video`: the released GenieDrive video model (occ_render
`WanTransformer3DModel`) as a gdrive video-model folder.

Inputs: `--transformer` the official weights (diffusion_pytorch_model.safetensors, a
`.safetensors.index.json` of shards, or a torch.save state dict read with weights_only=True),
`--config` the config.json saved with them, and optionally `--base` the Wan2.1 base folder
(alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control: Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth,
models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, optionally base_config.json and the umT5
tokenizer; components already in diffusers / transformers format, as <component>/config.json, are
taken as they are). Everything is checked before anything is written: the config (an unknown
`model_type`, sizes gdrive cannot hold), every key and shape of the weights against it, and the
base's files (every model needs the VAE, an i2v model the CLIP image encoder; the text encoder is
optional, since `--prompt-embeds` can replace it). The folder is

video-models/<name>/
    manifest.json          sources: each file's name, size and sha256
    video_config.json      a VideoConfig derived from the official config (sizes, layout, text_len;
                           the VAE sizes of the base, else the Wan2.1 VAE's)
    transformer/           MultiViewWanTransformer in diffusers format (gdrive key names)
    vae/, text_encoder/, image_encoder/, tokenizer/    with --base (official_base.convert_base)

`pipelines.video.load_video_model(folder)` reads it back; `official_forward(m, ...)` and, with a base,
`official_vae_encode` / `official_vae_decode` / `official_text_encode` / `official_image_encode`
take the loaded model. Without --base there is no vae/: the model loads, and generation asks for
an import with --base.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan

from ..console import ui
from ..errors import BadInput
from ..import_weights import ImportRequest, file_source
from ..store import Workspace, artifact_id, publish
from ..store.names import check_name, default_name
from . import official_base as ob
from .configs import CONFIGS, TransformerSpec, VAESpec, VideoConfig
from .loading import (IMAGE_ENCODER_DIR, TEXT_ENCODER_DIR, TOKENIZER_DIR, TRANSFORMER_DIR, VAE_DIR,
                      VIDEO_CONFIG_FILE, _one_line, quiet_hf_progress)
from .model import transformer_kwargs
from .official_transformer import (CLIP_TOKENS, _field, official_transformer_kwargs,
                                   transformer_from_official)
from ..weights import read_state_dict

FORMAT = "geniedrive-video"  # its entry in pipelines.import_weights.FORMATS
KIND = "video-model"
SCHEMA = 1
IMPORTED_NAME = "geniedrive-video"  # VideoConfig.name of an import whose sizes are no named config's
TRANSFORMER_HINT = "occ_render's diffusion_pytorch_model.safetensors"
CONFIG_HINT = "the config.json saved beside the transformer weights (occ_render ckpts/config.json)"




# --- the official config -> a gdrive VideoConfig -------------------------------------------------------

def read_official_config(path: Path) -> dict:
    where = f"--config {path}"
    if path.is_dir():
        raise BadInput(f"{where}: is a folder; pass its config.json ({CONFIG_HINT})")
    if not path.is_file():
        raise BadInput(f"{where}: file does not exist; give {CONFIG_HINT}")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{where}: cannot read it as JSON ({_one_line(exc)}); give {CONFIG_HINT}") from None
    if not isinstance(cfg, dict):
        raise BadInput(f"{where}: holds a JSON {type(cfg).__name__}, not an object; give {CONFIG_HINT}")
    return cfg


def video_config_from_official(cfg: Mapping, vae: VAESpec | None = None, where: str = "config.json") -> VideoConfig:
    """The VideoConfig of an official transformer config (BadInput when gdrive cannot hold it).

    Sizes and layout from `cfg`; the VAE from `vae` (default: the Wan2.1 VAE); views, multi-view
    placement, flow, sampling and optimiser settings are the official ones (`wan2.1-1.3b`). Named
    after the named config it equals, else `geniedrive-video`.
    """
    kwargs = official_transformer_kwargs(cfg, where)
    vae = vae or VAESpec()
    spec = TransformerSpec(
        num_attention_heads=kwargs["num_attention_heads"], attention_head_dim=kwargs["attention_head_dim"],
        num_layers=kwargs["num_layers"], ffn_dim=kwargs["ffn_dim"], text_dim=kwargs["text_dim"],
        freq_dim=kwargs["freq_dim"], patch_size=tuple(kwargs["patch_size"]), eps=kwargs["eps"],
        cross_attn_norm=kwargs["cross_attn_norm"], qk_norm=kwargs["qk_norm"],
        rope_max_seq_len=kwargs["rope_max_seq_len"], model_type=str(_field(cfg, "model_type")),
        add_ref_conv=kwargs["add_ref_conv"], image_dim=kwargs["image_dim"], image_tokens=CLIP_TOKENS)
    released = CONFIGS["wan2.1-1.3b"]
    config = dataclasses.replace(released, name=IMPORTED_NAME, transformer=spec, vae=vae,
                                 text_len=_field(cfg, "text_len"), base_model="")
    for named in CONFIGS.values():
        if dataclasses.replace(config, name=named.name) == named:
            config = named
            break
    # what gdrive derives from the VAE must be what the official config says
    z = vae.z_dim
    for key, why in (("out_channels", f"out_dim must be the VAE's z_dim {z}"),
                     ("in_channels", f"in_dim must be 3 x {z} (noisy | control | first-frame latents, as the "
                                     "released in_dim 48)"),
                     ("in_dim_ref_conv", f"in_dim_ref_conv must be the VAE's z_dim {z} (first-frame latents)")):
        if kwargs[key] != transformer_kwargs(config)[key]:
            official = {"out_channels": "out_dim", "in_channels": "in_dim"}.get(key, key)
            raise BadInput(f"{where}: {official} {kwargs[key]} does not fit gdrive's video model ({why}); "
                           "this is not a GenieDrive occ_render config, or the --base VAE is another one")
    config.check(where)
    mine = transformer_kwargs(config)
    if mine != kwargs:  # a derivation that lost a field would silently build another model
        odd = sorted(k for k in kwargs if mine.get(k) != kwargs[k])
        raise RuntimeError(f"video config derived from {where} differs from the official kwargs in {odd}")
    return config


# --- the base folder -----------------------------------------------------------------------------------

@dataclass
class BasePlan:
    folder: Path
    cfg: dict  # base_config.json, {} for the released (full) sizes
    sources: dict  # component -> official_base._Source, None when absent
    vae: VAESpec


def _vae_spec(source, cfg: Mapping, where: str) -> VAESpec:
    if source.library:
        try:
            d = dict(AutoencoderKLWan.load_config(source.path))
        except Exception as exc:
            raise BadInput(f"{where}: cannot read {source.path / 'config.json'} ({_one_line(exc)}); write the VAE "
                           "with save_pretrained or give Wan2.1_VAE.pth instead") from None
        if d.get("attn_scales"):
            raise BadInput(f"{where}: {source.path} has attn_scales {d['attn_scales']!r}; the Wan2.1 VAE uses []")
    else:
        entry = cfg.get(ob.VAE, {})
        d = ob.vae_config(entry.get("kwargs"), entry.get("latents_mean"), entry.get("latents_std"),
                          f"{where} ({ob.BASE_CONFIG_FILE} vae)")
    try:
        return VAESpec(base_dim=int(d["base_dim"]), z_dim=int(d["z_dim"]), dim_mult=tuple(d["dim_mult"]),
                       num_res_blocks=int(d["num_res_blocks"]), temperal_downsample=tuple(d["temperal_downsample"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{where}: the VAE config lacks or mistypes {exc}; give Wan2.1_VAE.pth instead") from None


def plan_base(base: str, i2v: bool) -> BasePlan:
    """The base's components, checked without reading weights: the VAE must be there, and the
    CLIP image encoder for an i2v model; the sizes in base_config.json must be buildable."""
    folder = Path(base).expanduser()
    where = f"--base {folder}"
    if not folder.is_dir():
        raise BadInput(f"{where}: no such folder; give the local Wan2.1 base folder "
                       "(alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control)")
    try:
        cfg = ob.read_base_config(folder)
        sources = ob._sources(folder, cfg)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from None
    need = [ob.VAE] + ([ob.IMAGE_ENCODER] if i2v else [])
    missing = [c for c in need if sources[c] is None]
    if missing:
        files = " and ".join(str(cfg.get(c, {}).get("file", ob.WAN_FILES[c])) for c in missing)
        why = "the VAE and the CLIP image encoder of an i2v model" if len(missing) > 1 else (
            "the VAE" if missing[0] == ob.VAE else "the CLIP image encoder (model_type i2v)")
        raise BadInput(f"{where}: missing {files} (or {'/, '.join(missing)}/ in library format), {why}; download "
                       "the Wan2.1 base (alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control) into this folder")
    try:
        for source in sources.values():
            if source is not None and source.library:
                ob._check_library_dir(source)
        entry = lambda c: cfg.get(c, {}).get("kwargs")  # noqa: E731
        if sources[ob.TEXT_ENCODER] is not None and not sources[ob.TEXT_ENCODER].library:
            ob.umt5_config(entry(ob.TEXT_ENCODER), f"{ob.BASE_CONFIG_FILE} text_encoder")
        if sources[ob.IMAGE_ENCODER] is not None and not sources[ob.IMAGE_ENCODER].library:
            ob.clip_vision_config(entry(ob.IMAGE_ENCODER), f"{ob.BASE_CONFIG_FILE} image_encoder")
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from None
    return BasePlan(folder, cfg, sources, _vae_spec(sources[ob.VAE], cfg, where))


# --- the weights ---------------------------------------------------------------------------------------

def read_transformer(path: Path) -> dict[str, torch.Tensor]:
    """The official state dict: safetensors or torch.save (weights_only), or shards listed in a
    `*.safetensors.index.json`."""
    flag = "--transformer"
    if path.is_dir():
        raise BadInput(f"{flag} {path}: is a folder; pass its diffusion_pytorch_model.safetensors (and its "
                       "config.json as --config)")
    if not path.name.endswith(".index.json"):
        return read_state_dict(path, flag)
    try:
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"{flag} {path}: not a safetensors index ({_one_line(exc)}); pass the weights file "
                       "or the index.json written with its shards") from None
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(read_state_dict(path.parent / shard, f"{flag} {path.name}: shard"))
    return state


def _transformer_files(path: Path) -> list[Path]:
    if path.name.endswith(".index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        return [path] + [path.parent / s for s in shards]
    return [path]


def _sources(transformer: Path, config: Path, base: BasePlan | None) -> dict[str, dict]:
    out = {"transformer": file_source(transformer, _transformer_files(transformer)), "config": file_source(config)}
    if base is not None:
        if (base.folder / ob.BASE_CONFIG_FILE).is_file():
            out["base_config"] = file_source(base.folder / ob.BASE_CONFIG_FILE)
        for component, source in base.sources.items():
            if source is not None:
                out[component] = file_source(source.path)
        tokenizer = ob._tokenizer_dir(base.folder)
        if tokenizer is not None:
            out[TOKENIZER_DIR] = file_source(tokenizer)
    return out


# --- the command ---------------------------------------------------------------------------------------

def _write_base(base: BasePlan, folder: Path, need: list[str]) -> list[str]:
    """convert_base into a staging folder inside the artifact's temporary folder, then its
    components beside transformer/."""
    staged = folder / ".base"
    try:
        with quiet_hf_progress():
            done = ob.convert_base(base.folder, staged, need=need)
    except BadInput as exc:  # a file that does not read or fit: the message names it
        raise BadInput(f"--base: {exc}") from None
    for sub in done:
        (staged / sub).rename(folder / sub)
    shutil.rmtree(staged, ignore_errors=True)
    return sorted(done)


def run_import(ws: Workspace, req: ImportRequest) -> dict:
    """This format's import, called by `pipelines.import_weights.run_import_weights` (which checked
    the format and that only --transformer / --config / --base of the format flags are given)."""
    if req.name is not None:
        check_name(req.name, "--name")
    if req.transformer is None:
        raise BadInput(f"--transformer: required; give the official transformer weights ({TRANSFORMER_HINT})")
    if req.config is None:
        raise BadInput(f"--config: required; give {CONFIG_HINT}")
    transformer_file, config_file = Path(req.transformer).expanduser(), Path(req.config).expanduser()
    official = read_official_config(config_file)
    where = f"--config {config_file}"
    official_transformer_kwargs(official, where)  # model_type and the sizes, before the base is looked at
    i2v = _field(official, "model_type") == "i2v"
    base = plan_base(req.base, i2v) if req.base is not None else None
    config = video_config_from_official(official, base.vae if base else None, where)
    model = transformer_from_official(official, read_transformer(transformer_file), f"--transformer {transformer_file}")
    sources = _sources(transformer_file, config_file, base)
    id_fields = {"format": FORMAT, "config": config.to_dict()}
    inputs = {role: s["sha256"] for role, s in sources.items()}
    ident = artifact_id("import-weights", SCHEMA, id_fields, inputs)
    name = req.name or default_name(FORMAT, ident)
    need = [ob.VAE] + ([ob.IMAGE_ENCODER] if i2v else [])
    parts: list[str] = [TRANSFORMER_DIR]

    def build(w) -> dict:
        model.save_pretrained(w.tmp / TRANSFORMER_DIR, safe_serialization=True)
        if base is not None:
            parts.extend(_write_base(base, w.tmp, need))
        (w.tmp / VIDEO_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")  # last
        return {"sources": sources, "format": FORMAT, "parts": parts}

    request = {"format": FORMAT, "transformer": transformer_file.name, "config": config_file.name,
               "base": str(base.folder.resolve()) if base else None, "name": req.name, "force": req.force}
    res = publish(ws, KIND, "import-weights", SCHEMA, name, request, id_fields, inputs, build, force=req.force)
    art = res.artifact
    parts = art.manifest.get("parts", parts)
    t = config.transformer
    layout = f"{t.model_type}{' + ref_conv' if t.add_ref_conv else ''}"
    missing = [p for p in (VAE_DIR, TEXT_ENCODER_DIR, IMAGE_ENCODER_DIR) if p not in parts]
    ui.info(f"{'reused' if res.reused else 'wrote'} video model '{art.name}' (id {ident}) at {art.path}; "
            f"{layout}, config {config.name}" + (f"; no {', '.join(missing)} (import with --base DIR)" if missing else ""))
    n = sum(p.numel() for p in model.parameters())
    return {"command": "import-weights", "format": FORMAT, "kind": KIND, "name": art.name, "id": ident,
            "path": str(art.path), "reused": res.reused, "config": config.name, "model_type": t.model_type,
            "add_ref_conv": t.add_ref_conv, "parameters": n, "parts": parts, "sources": sources}

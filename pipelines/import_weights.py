"""`gdrive import-weights`: one table of the official checkpoint formats, one entry point.

Each format names the flags it takes and the module that imports it (loaded only when used):

- `geniedrive-occ`: `pipelines.occworld.import_weights` (--checkpoint, --vae) -> models/<name>/
- `geniedrive-video`: `pipelines.video.import_weights` (--transformer, --config, --base) ->
  video-models/<name>/

`run_import_weights(ws, ImportRequest(...))` checks the format and that no flag of another format
is given (BadInput, one line), then hands the request to the format's `run_import`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput


@dataclass(frozen=True)
class Format:
    what: str  # what the format is, with its files (listed by `gdrive import-weights --help`)
    flags: tuple[str, ...]  # the ImportRequest fields (flags) it takes besides --name / --force
    module: str  # holds run_import(ws, ImportRequest) -> dict


FORMATS: dict[str, Format] = {
    "geniedrive-occ": Format(
        "the GenieDrive occupancy world model (--checkpoint genie_occ.pth or stage2_init_ckpt.pth, "
        "optional --vae vae_d64_210.pth)",
        ("checkpoint", "vae"), ".occworld.import_weights"),
    "geniedrive-video": Format(
        "the GenieDrive multi-view video model (--transformer diffusion_pytorch_model.safetensors --config "
        "config.json of occ_render, optional --base: the Wan2.1 base folder with Wan2.1_VAE.pth and the "
        "umT5 / CLIP files)",
        ("transformer", "config", "base"), ".video.import_weights"),
}


@dataclass
class ImportRequest:
    format: str
    checkpoint: str | None = None
    vae: str | None = None
    transformer: str | None = None
    config: str | None = None
    base: str | None = None
    name: str | None = None
    force: bool = False


def file_source(path: Path, files: list[Path] | None = None) -> dict:
    """The manifest's record of one source: name, bytes and sha256 of a file, or of a file set (a
    folder's files in order, a sharded checkpoint's index and shards)."""
    if files is None:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    out = {"file": path.name + ("/" if path.is_dir() else ""), "bytes": sum(f.stat().st_size for f in files),
           "sha256": h.hexdigest()}
    if len(files) > 1:
        out["files"] = len(files)
    return out


def formats_help() -> str:
    return "; ".join(f"{k}: {v.what}" for k, v in FORMATS.items())


def check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise BadInput(f"--format '{fmt}': unknown format; choose one of {formats_help()}")
    return FORMATS[fmt]


def run_import_weights(ws, req: ImportRequest) -> dict:
    spec = check_format(req.format)
    optional = {f.name for f in dataclasses.fields(ImportRequest)} - {"format", "name", "force"}
    stray = [f for f in sorted(optional - set(spec.flags)) if getattr(req, f) is not None]
    if stray:
        flag = "--" + stray[0].replace("_", "-")
        raise BadInput(f"{flag}: not used by --format {req.format}, which takes "
                       f"{', '.join('--' + f for f in spec.flags)}; drop it or choose the format it belongs to")
    return importlib.import_module(spec.module, __package__).run_import(ws, req)

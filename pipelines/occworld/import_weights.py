"""`gdrive import-weights --format geniedrive-occ`: the released GenieDrive occupancy checkpoints as
a gdrive world-model folder.

Reads (with `weights_only=True` only) the mmcv layout `{'meta', 'state_dict'}` of
`stage2_init_ckpt.pth` / `genie_occ.pth` (`pose_encoder.*`, `transformer.*`, `vqvae.*` and the
`ce_loss.weight` buffer), the EMA layout `{'iter' | 'epoch', 'state_dict', 'updates'}`, and, with
`--vae`, the standalone VAE dict (`vae_d64_210.pth`), which replaces the `vqvae.` weights. Every
official key must map and every gdrive weight be filled (official_weights.py). Everything is
checked before anything is written; the model folder is

models/<name>/
    manifest.json          sources: each file's name, size and sha256
    config.json            `paper` with protocol "geniedrive" (the official rollout and evaluation)
    vae.safetensors, forecaster.safetensors
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..console import ui
from ..errors import BadInput
from ..import_weights import ImportRequest, file_source
from ..runtime.checkpoint import save_weights
from .configs import CONFIGS, WorldModelConfig
from ..runtime.model_artifact import MODEL_SCHEMA
from .official_weights import (LOSS_BUFFERS, forecaster_state_from_official,
                               vae_state_from_official)
from .world_model import WorldModel
from ..store import Workspace, artifact_id, publish
from ..store.names import check_name, default_name
from ..weights import check_fit, read_state_dict

FORMAT = "geniedrive-occ"  # its entry in pipelines.import_weights.FORMATS
PREDICTOR_PREFIXES = ("pose_encoder.", "transformer.")
VAE_PREFIX = "vqvae."




def imported_config() -> WorldModelConfig:
    """`paper` evaluated the official way; the VAE's dropout is off as in the official EE_World."""
    paper = CONFIGS["paper"]
    return dataclasses.replace(paper, vae=dataclasses.replace(paper.vae, dropout=0.0), protocol="geniedrive")


def _looks_like_vae(state: dict) -> bool:
    return any(k.startswith(("transformers.xy.", "class_embeds.", "vox_encoder.")) for k in state)


def _split_checkpoint(state: dict[str, torch.Tensor], where: str) -> tuple[dict, dict]:
    """(predictor tensors with their prefixes, VAE tensors without `vqvae.`) of an EE_World dict."""
    predictor = {k: v for k, v in state.items() if k.startswith(PREDICTOR_PREFIXES)}
    vae = {k[len(VAE_PREFIX):]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    if not predictor:
        if _looks_like_vae(state):
            raise BadInput(f"--checkpoint {where}: is a standalone VAE (no pose_encoder. / transformer. keys); pass it "
                           "as --vae and give the EE_World checkpoint (genie_occ.pth or stage2_init_ckpt.pth) as --checkpoint")
        raise BadInput(f"--checkpoint {where}: holds no pose_encoder. / transformer. keys, so it is no GenieDrive "
                       "EE_World checkpoint; give genie_occ.pth or stage2_init_ckpt.pth")
    other = sorted(k for k in state if not k.startswith(PREDICTOR_PREFIXES + (VAE_PREFIX,)) and k not in LOSS_BUFFERS)
    if other:
        more = f" and {len(other) - 4} more" if len(other) > 4 else ""
        raise BadInput(f"--checkpoint {where}: keys outside pose_encoder. / transformer. / vqvae.: {', '.join(other[:4])}{more}; "
                       "this is not an EE_World checkpoint of the released layout")
    return predictor, vae


def load_official(checkpoint: Path, vae_file: Path | None) -> WorldModel:
    """A WorldModel holding the official weights (BadInput when a file does not fit)."""
    state = read_state_dict(checkpoint, "--checkpoint")
    predictor, vae = _split_checkpoint(state, str(checkpoint))
    if vae_file is not None:
        vae = read_state_dict(vae_file, "--vae")
        if vae and all(k.startswith(VAE_PREFIX) for k in vae):
            vae = {k[len(VAE_PREFIX):]: v for k, v in vae.items()}
        if any(k.startswith(PREDICTOR_PREFIXES) for k in vae):
            raise BadInput(f"--vae {vae_file}: holds predictor keys (pose_encoder. / transformer.); --vae takes the "
                           "standalone VAE (vae_d64_210.pth); pass the EE_World file as --checkpoint")
    elif not vae:
        raise BadInput(f"--checkpoint {checkpoint}: holds no vqvae. weights; give the VAE with --vae (vae_d64_210.pth)")
    model = WorldModel(imported_config())
    vae_where = f"--vae {vae_file}" if vae_file is not None else f"--checkpoint {checkpoint} (vqvae.)"
    for module, converted, where in (
            (model.vae, vae_state_from_official(vae, model.vae.state_dict(), vae_where), vae_where),
            (model.forecaster, forecaster_state_from_official(predictor, model.forecaster.state_dict(),
                                                               f"--checkpoint {checkpoint}"), f"--checkpoint {checkpoint}")):
        check_fit(converted, module.state_dict(), where, hint="give the released GenieDrive files")
        module.load_state_dict(converted)
    return model.eval()


def run_import(ws: Workspace, req: ImportRequest) -> dict:
    """This format's import, called by `pipelines.import_weights.run_import_weights` (which checked
    the format and that only --checkpoint / --vae of the format flags are given)."""
    if req.name is not None:
        check_name(req.name, "--name")
    if req.checkpoint is None:
        raise BadInput("--checkpoint: required; give the EE_World checkpoint (genie_occ.pth or stage2_init_ckpt.pth)")
    checkpoint = Path(req.checkpoint)
    vae_file = Path(req.vae) if req.vae is not None else None
    model = load_official(checkpoint, vae_file)
    sources = {"checkpoint": file_source(checkpoint)} | ({"vae": file_source(vae_file)} if vae_file is not None else {})
    id_fields = {"format": req.format, "model": model.cfg.to_dict()}
    inputs = {role: s["sha256"] for role, s in sources.items()}
    ident = artifact_id("import-weights", MODEL_SCHEMA, id_fields, inputs)
    name = req.name or default_name("geniedrive-occ", ident)

    def build(w) -> dict:
        for stem, module in (("vae", model.vae), ("forecaster", model.forecaster)):
            save_weights(module, w.path(f"{stem}.safetensors"))
        w.write_json("config.json", model.cfg.to_dict())
        return {"sources": sources, "protocol": model.cfg.protocol, "parts": ["forecaster", "vae"]}

    request = {"format": req.format, "checkpoint": checkpoint.name, "vae": vae_file.name if vae_file is not None else None,
               "name": req.name, "force": req.force}
    res = publish(ws, "model", "import-weights", MODEL_SCHEMA, name, request, id_fields, inputs, build, force=req.force)
    art = res.artifact
    ui.info(f"{'reused' if res.reused else 'wrote'} model '{art.name}' (id {ident}) at {art.path}; "
            f"protocol geniedrive")
    n = sum(p.numel() for p in model.parameters())
    return {"command": "import-weights", "format": req.format, "kind": "model", "name": art.name, "id": ident,
            "path": str(art.path), "reused": res.reused, "protocol": model.cfg.protocol, "parameters": n, "sources": sources}

"""`gdrive import-weights`: released GenieDrive checkpoints as a gdrive model folder."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .config_file import resolve_request
from .options import emit, state
from ..pipelines.import_weights import ImportRequest, formats_help, run_import_weights
from ..pipelines.store import Workspace

REQUESTS = (ImportRequest,)  # the options' defaults (shown by --help)


def command(
    format: Annotated[str, typer.Option("--format", help=f"Checkpoint format. {formats_help()}.")],
    checkpoint: Annotated[Optional[str], typer.Option(help="geniedrive-occ: the EE_World checkpoint, mmcv {'meta', 'state_dict'} or EMA layout (genie_occ.pth, stage2_init_ckpt.pth); required for that format.")] = None,
    vae: Annotated[Optional[str], typer.Option(help="geniedrive-occ: the standalone VAE dict (vae_d64_210.pth); replaces the checkpoint's vqvae. weights (default: the checkpoint's own).")] = None,
    transformer: Annotated[Optional[str], typer.Option(help="geniedrive-video: the occ_render transformer weights (diffusion_pytorch_model.safetensors, or its .safetensors.index.json); required for that format.")] = None,
    config: Annotated[Optional[str], typer.Option(help="geniedrive-video: the config.json saved with those weights (model_type t2v or i2v); required for that format.")] = None,
    base: Annotated[Optional[str], typer.Option(help="geniedrive-video: the Wan2.1 base folder (Wan2.1_VAE.pth; the CLIP file for i2v; the umT5 file optional); converted into vae/, image_encoder/, text_encoder/. Without it (the default) the model has no VAE and cannot generate.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name in the workspace (default: <format>-<id>).")] = None,
    force: Annotated[Optional[bool], typer.Option("--force", help="Replace a model of that name made from other files.")] = None,
) -> None:
    """Import official weights (read with weights_only=True). geniedrive-occ: a world-model folder
    that forecast, evaluate occ and generate take with --model NAME; the model keeps the official
    rollout and evaluation protocol (recorded in its config.json). geniedrive-video: a video-model
    folder that generate takes with --video-model NAME.

    Example: gdrive import-weights --format geniedrive-occ --checkpoint genie_occ.pth --vae vae_d64_210.pth --name genie-occ

    Example: gdrive import-weights --format geniedrive-video --transformer ckpts/diffusion_pytorch_model.safetensors --config ckpts/config.json --base Wan2.1-Fun-V1.1-1.3B-Control --name genie-video
    """
    req = resolve_request(ImportRequest, dict(locals()))  # --config here is the video config.json, a field
    emit(run_import_weights(Workspace.at(state.workspace), req))

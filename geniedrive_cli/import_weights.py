"""`gdrive import-weights`: released GenieDrive checkpoints as a gdrive model folder."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from geniedrive_cli.options import emit, state
from pipelines.occworld.import_weights import FORMATS, ImportWeightsRequest, run_import_weights
from pipelines.store import Workspace


def command(
    format: Annotated[str, typer.Option("--format", help=f"Checkpoint format: {', '.join(FORMATS)}.")],
    checkpoint: Annotated[Optional[str], typer.Option(help="geniedrive-occ: the EE_World checkpoint, mmcv {'meta', 'state_dict'} or EMA layout (genie_occ.pth, stage2_init_ckpt.pth).")] = None,
    vae: Annotated[Optional[str], typer.Option(help="geniedrive-occ: the standalone VAE dict (vae_d64_210.pth); replaces the checkpoint's vqvae. weights.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Model name in the workspace (default: geniedrive-occ-<id>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a model of that name made from other files.")] = False,
) -> None:
    """Import official weights (read with weights_only=True) into a world-model folder that forecast,
    evaluate occ and generate take with --model NAME; the model keeps the official rollout and
    evaluation protocol (recorded in its config.json).

    Example: gdrive import-weights --format geniedrive-occ --checkpoint genie_occ.pth --vae vae_d64_210.pth --name genie-occ
    """
    res = run_import_weights(Workspace.at(state.workspace), ImportWeightsRequest(format, checkpoint, vae, name, force))
    emit(res)

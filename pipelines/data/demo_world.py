"""The embedded demo world: built on first use, so the README's headline (`gdrive generate --frames
241`) works on an empty workspace.

`forecast`, `render` and `generate` take `--dataset latest` by default; where the workspace holds no
dataset at all (no folder under datasets/, not even a broken one), they first build the synthetic
demo world exactly as `gdrive prepare-occ --name demo` does, and say so.
"""

from __future__ import annotations

from pathlib import Path

from ..console import ui
from .dataset import OccDataset
from ..store import Workspace

DEMO_DATASET = "demo"


def _no_dataset(ws: Workspace) -> bool:
    folder = ws.kind_dir("dataset")
    return not folder.is_dir() or not any(not p.name.startswith(".") for p in folder.iterdir())


def open_dataset(ref: str = "latest", workspace: str | Path | None = None, flag: str = "--dataset") -> OccDataset:
    """A dataset by name, id, id prefix, 'latest' or folder (OccDataset.open) in `workspace` (default:
    $GDRIVE_WORKSPACE, else ./gdrive-workspace), building the demo world first when `ref` is
    'latest' on a workspace without datasets."""
    ws = Workspace.at(workspace)
    if ref == "latest" and _no_dataset(ws):
        from .prepare import PrepareRequest, prepare_occ

        ui.info(f"no dataset in {ws.root} yet: building the embedded demo world '{DEMO_DATASET}' first "
                "(synthetic, seed 0, 4 scenes x 40 keyframes, as `gdrive prepare-occ --name demo`)")
        prepare_occ(ws, PrepareRequest(name=DEMO_DATASET))
    return OccDataset.open(ref, workspace, flag)

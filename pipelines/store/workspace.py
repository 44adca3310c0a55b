"""Where artifacts live: `--workspace DIR`, else $GDRIVE_WORKSPACE, else ./gdrive-workspace."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput

DEFAULT_WORKSPACE = "gdrive-workspace"
ENV_WORKSPACE = "GDRIVE_WORKSPACE"

# Artifact kinds and the folder each lives in, with the command that makes one.
KINDS: dict[str, tuple[str, str]] = {
    "dataset": ("datasets", "gdrive prepare-occ --name NAME"),
    "cache": ("caches", "built on first use by the loaders"),
    "model": ("models", "gdrive train-vae --name NAME"),
    "forecast": ("forecasts", "gdrive forecast --scene SCENE --traj straight --name NAME"),
    "render": ("renders", "gdrive render --scene SCENE --name NAME"),
    "generation": ("generations", "gdrive generate --scene SCENE --traj straight"),
    "video-model": ("video-models", "gdrive finetune-video --dataset DATASET --name NAME"),
}


def resolve_workspace(flag: str | os.PathLike | None = None) -> Path:
    """The workspace folder from the flag, the environment or the default (not created)."""
    if flag:
        return Path(flag).expanduser()
    env = os.environ.get(ENV_WORKSPACE)
    return Path(env).expanduser() if env else Path(DEFAULT_WORKSPACE)


@dataclass
class Workspace:
    root: Path

    @classmethod
    def at(cls, flag: str | os.PathLike | None = None) -> "Workspace":
        return cls(resolve_workspace(flag).absolute())

    def kind_dir(self, kind: str) -> Path:
        return self.root / KINDS[kind][0]

    def ensure_writable(self) -> None:
        """Create the workspace if needed and prove it accepts files, or raise BadInput (exit 2)."""
        what = f"--workspace {self.root}"
        if self.root.exists() and not self.root.is_dir():
            raise BadInput(f"{what}: is a file, not a folder; pass a folder path to --workspace")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise BadInput(
                f"{what}: not writable ({exc.strerror or type(exc).__name__}); choose another --workspace "
                f"or set ${ENV_WORKSPACE}"
            ) from None

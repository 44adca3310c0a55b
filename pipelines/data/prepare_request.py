"""What `gdrive prepare-occ` asks for, as plain values; each field's default is the command's
default (`gdrive prepare-occ --help` shows it), declared here once. Light on purpose (no numpy)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class PrepareRequest:
    source: str = "synthetic"
    name: str | None = None
    seed: int = 0
    scenes: int | None = None  # synthetic: how many; other sources: the first N (None = all)
    frames: int = 40  # synthetic only
    dataroot: str | None = None
    version: str = "v1.0-trainval"
    occ_root: str | None = None
    previews: bool = True
    workers: int | None = None
    force: bool = False
    synthetic: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra SyntheticConfig fields

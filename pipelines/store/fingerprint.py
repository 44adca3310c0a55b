"""Whether an input folder changed since an artifact was made from it, without reading the files.

A folder's fingerprint is a digest of its files' relative paths, sizes and modification times
(ns): cheap on gigabytes of tables or weights, and it changes whenever a file is added, removed,
rewritten or touched. Sources put it in their `id_fields`, so a changed input gives a new
artifact id instead of a stale reuse.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable


def folder_fingerprint(root: Path, files: Iterable[Path] | None = None) -> str:
    """16 hex digits of sha256 over (path relative to `root`, size, mtime_ns) of each file, in the
    order given; `files` defaults to every file below `root`, sorted."""
    root = Path(root)
    if files is None:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    stamps = [(str(Path(p).relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(repr(stamps).encode()).hexdigest()[:16]

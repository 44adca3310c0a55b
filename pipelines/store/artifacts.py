"""Artifacts: one folder per stage output, published atomically with its manifest last.

An artifact's id hashes (stage, schema version, the config fields that change the result, the
ids of its inputs), so the same request maps to the same id and can be reused. A stage writes
into a temporary sibling folder (`.tmp-<name>-<random>`), writes `manifest.json` last and renames
the folder into place, so a run killed at any moment leaves nothing that reads as complete. A lock
file per (kind, name) serialises concurrent runs of one stage: the second waits, then finds the
first one's artifact and reuses it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipelines import __version__
from pipelines.errors import BadInput
from pipelines.store.workspace import KINDS, Workspace

MANIFEST = "manifest.json"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def artifact_id(stage: str, schema: int, config: dict, inputs: dict | None = None) -> str:
    """16 hex digits of sha256 over (stage, schema, result-changing config, input ids)."""
    payload = canonical_json({"stage": stage, "schema": schema, "config": config, "inputs": inputs or {}})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class Artifact:
    kind: str
    name: str
    path: Path
    manifest: dict

    @property
    def id(self) -> str:
        return self.manifest["id"]


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def list_artifacts(ws: Workspace, kind: str) -> list[Artifact]:
    """Complete artifacts of one kind, oldest first (folders without a manifest are skipped)."""
    root = ws.kind_dir(kind)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.name.startswith(".") or not p.is_dir():
            continue
        m = read_manifest(p)
        if m is not None and m.get("kind") == kind:
            out.append(Artifact(kind, p.name, p, m))
    return sorted(out, key=lambda a: (a.manifest.get("created", ""), a.name))


def find_artifact(ws: Workspace, kind: str, ref: str, flag: str) -> Artifact:
    """Resolve a reference by name, id, unique id prefix (>= 4 digits) or 'latest'.

    An unknown reference raises BadInput listing what exists and the command that makes one.
    """
    items = list_artifacts(ws, kind)
    if ref == "latest" and items:
        return items[-1]
    for a in items:
        if a.name == ref or a.id == ref:
            return a
    if len(ref) >= 4:
        hits = [a for a in items if a.id.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
    have = ", ".join(f"{a.name} ({a.id[:8]})" for a in items) or "none"
    make = KINDS[kind][1].replace("NAME", ref if ref != "latest" else "NAME")
    raise BadInput(f"{flag} '{ref}': no such {kind} in {ws.root} (existing: {have}); make it with `{make}`")


@contextlib.contextmanager
def artifact_lock(ws: Workspace, kind: str, name: str) -> Iterator[None]:
    """Exclusive lock for writing artifact `name` of `kind`; released even on SIGKILL (flock)."""
    lock_dir = ws.kind_dir(kind) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def recover_dir(root: Path, name: str, marker: str = MANIFEST) -> None:
    """Under the lock: drop temp folders of dead runs; restore a replaced folder whose swap died.

    `marker` is the file that makes a folder complete (manifest.json, or state.json for checkpoints).
    """
    target = root / name
    for p in root.glob(f".tmp-{name}-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in sorted(root.glob(f".old-{name}-*")):
        if not target.exists() and (p / marker).is_file():
            p.rename(target)
        else:
            shutil.rmtree(p, ignore_errors=True)


class ArtifactWriter:
    """Builds one artifact in a temporary folder; `publish` finalises it.

    Usage:
        with open_artifact(ws, "dataset", name, ...) as w: (see `publish`)
    """

    def __init__(self, ws: Workspace, kind: str, name: str):
        self.ws, self.kind, self.name = ws, kind, name
        self.root = ws.kind_dir(kind)
        self.tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir(parents=True)

    def path(self, rel: str) -> Path:
        p = self.tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_bytes(self, rel: str, data: bytes) -> Path:
        p = self.path(rel)
        p.write_bytes(data)
        return p

    def write_json(self, rel: str, obj: Any) -> Path:
        return self.write_bytes(rel, (json.dumps(obj, indent=1, default=str) + "\n").encode())

    def finish(self, manifest: dict) -> Artifact:
        """Write the manifest last, sync, and rename the folder into place (replacing any old one)."""
        mpath = self.tmp / MANIFEST
        with open(mpath, "w") as fh:
            fh.write(json.dumps(manifest, indent=1, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        target = self.root / self.name
        replace_dir(self.tmp, target)
        return Artifact(self.kind, self.name, target, manifest)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename a finished folder into place, swapping out any old one (kept as `.old-*` until the
    new one is in place, so a crash between the renames loses nothing: `recover_dir` restores it)."""
    old = None
    if target.exists():
        old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
        target.rename(old)
    tmp.rename(target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def base_manifest(kind: str, stage: str, schema: int, ident: str, name: str, config: dict,
                  id_fields: dict, inputs: dict) -> dict:
    return {
        "kind": kind,
        "stage": stage,
        "schema": schema,
        "id": ident,
        "name": name,
        "gdrive_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
        "config": config,
        "id_fields": id_fields,
        "inputs": inputs,
    }


@dataclass
class PublishResult:
    artifact: Artifact
    reused: bool


def reusable_artifact(ws: Workspace, kind: str, name: str, ident: str, force: bool) -> Artifact | None:
    """The existing artifact `name` when it has id `ident` (and not `force`), else None.

    Raises BadInput when the name is taken by another configuration (unless `force`) or by a
    folder gdrive did not make (always: nothing of the user's is ever deleted). Stages that run
    long before publishing (training) call this first, so a clash is reported before the work.
    """
    target = ws.kind_dir(kind) / name
    existing = read_manifest(target) if target.exists() else None
    if target.exists() and existing is None:
        raise BadInput(f"--name {name}: {target} exists but is not a gdrive {kind}; move it away or pick another --name")
    if existing is None or force:
        return None
    if existing.get("id") == ident:
        return Artifact(kind, name, target, existing)
    raise BadInput(
        f"--name {name}: a {kind} of that name exists with another configuration "
        f"(id {existing.get('id', '?')[:8]}, this run {ident[:8]}); pass --force to replace it or pick another --name"
    )


def publish(ws: Workspace, kind: str, stage: str, schema: int, name: str, config: dict,
            id_fields: dict, inputs: dict, build, force: bool = False) -> PublishResult:
    """Reuse the artifact `name` if its id matches, else build it atomically under the lock.

    `build(writer) -> dict` writes the artifact's files and returns extra manifest fields. An
    existing artifact of that name with another id is an error unless `force` (nothing is lost).
    """
    ident = artifact_id(stage, schema, id_fields, inputs)
    ws.ensure_writable()
    root = ws.kind_dir(kind)
    root.mkdir(parents=True, exist_ok=True)
    with artifact_lock(ws, kind, name):
        recover_dir(root, name)
        reuse = reusable_artifact(ws, kind, name, ident, force)
        if reuse is not None:
            return PublishResult(reuse, reused=True)
        writer = ArtifactWriter(ws, kind, name)
        try:
            extra = build(writer) or {}
            manifest = base_manifest(kind, stage, schema, ident, name, config, id_fields, inputs)
            manifest.update(extra)
            art = writer.finish(manifest)
        except BaseException:
            writer.abort()
            raise
        return PublishResult(art, reused=False)

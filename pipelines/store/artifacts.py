"""Artifacts: one folder per stage output, published atomically with its manifest last.

An artifact's id hashes (stage, schema version, the config fields that change the result, the
ids of its inputs), so the same request maps to the same id and can be reused. A stage writes
into a temporary sibling folder (`.tmp-<name>-<run id>`, owned by its run: see `OwnedTemp`),
checks that every file it wrote is there, writes `manifest.json` last (with the folder's file
count and size) and renames the folder into place, so a run killed at any moment leaves nothing
that reads as complete. A lock file per (kind, name) serialises concurrent runs of one stage: the
second waits, then finds the first one's artifact and reuses it, after checking that it still
holds every file it was published with.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import __version__
from ..console import ui
from ..errors import BadInput, RunFailure
from .names import RESERVED, check_name, inside, is_valid_name
from .workspace import KINDS, Workspace

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
    """The folder's manifest as a dict, or None when it has none (or one that is no JSON object)."""
    try:
        m = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):  # ValueError: bad JSON or bad UTF-8
        return None
    return m if isinstance(m, dict) else None


def _is_artifact(m: dict | None, kind: str) -> bool:
    return m is not None and m.get("kind") == kind and isinstance(m.get("id"), str) and bool(m["id"])


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
        if _is_artifact(m, kind):
            out.append(Artifact(kind, p.name, p, m))
    return sorted(out, key=lambda a: (str(a.manifest.get("created", "")), a.name))


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
    make = KINDS[kind][1].replace("NAME", ref if ref not in RESERVED and is_valid_name(ref) else "NAME")
    raise BadInput(f"{flag} '{ref}': no such {kind} in {ws.root} (existing: {have}); make it with `{make}`")


@contextlib.contextmanager
def artifact_lock(ws: Workspace, kind: str, name: str) -> Iterator[None]:
    """Exclusive lock for writing artifact `name` of `kind` (a checked name); released even on
    SIGKILL (flock)."""
    check_name(name)
    lock_dir = ws.kind_dir(kind) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Temporary folders: owned by one run, cleaned only when that run is provably dead
# --------------------------------------------------------------------------------------------

OWNER_FILE = ".owner"  # inside every temporary folder, flock-held by the run that writes it
_RUN_ID = re.compile(r"[0-9a-f]{12}|[0-9a-f]{8}")  # 8: the run ids of gdrive 0.1's temporaries


def _sibling(root: Path, prefix: str, name: str) -> list[Path]:
    """`<prefix>-<name>-<run id>` folders of exactly `name` (never those of `name-suffix`)."""
    head = f"{prefix}-{name}-"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.name.startswith(head) and _RUN_ID.fullmatch(p.name[len(head):]) and p.is_dir())


def _owner_alive(folder: Path) -> bool:
    """Whether a live process holds the owner lock of a temporary folder."""
    try:
        fh = open(folder / OWNER_FILE, "r+")
    except OSError:  # no owner file: a temporary of a run that never got to it, or of gdrive 0.1
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


class OwnedTemp:
    """A temporary sibling folder `.tmp-<name>-<run id>` whose owner lock this process holds until
    `seal` (complete, about to be renamed into place) or `discard`. Ownership is exact: cleanup of
    `name` never touches the temporaries of `name-suffix`, and never those of a live run."""

    def __init__(self, root: Path, name: str):
        self.path = root / f".tmp-{name}-{uuid.uuid4().hex[:12]}"
        self.path.mkdir(parents=True)
        self._owner = open(self.path / OWNER_FILE, "w")
        fcntl.flock(self._owner, fcntl.LOCK_EX)
        self._owner.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
        self._owner.flush()

    def seal(self) -> None:
        """Drop the owner file: what is left is exactly the artifact's content."""
        (self.path / OWNER_FILE).unlink(missing_ok=True)
        self._release()

    def discard(self) -> None:
        self._release()
        shutil.rmtree(self.path, ignore_errors=True)

    def _release(self) -> None:
        if not self._owner.closed:
            self._owner.close()


def recover_dir(root: Path, name: str, marker: str = MANIFEST) -> None:
    """Under the lock of `name`: drop the temporaries of dead runs of exactly `name`, and restore a
    replaced folder whose swap a killed run left half done.

    `marker` is the file that makes a folder complete (manifest.json, or state.json for checkpoints).
    """
    target = root / name
    for p in _sibling(root, ".tmp", name):
        if not _owner_alive(p):
            shutil.rmtree(p, ignore_errors=True)
    for p in _sibling(root, ".old", name):  # only made under the lock, so their run is over
        if not target.exists() and (p / marker).is_file():
            p.rename(target)
        else:
            shutil.rmtree(p, ignore_errors=True)


def folder_contents(folder: Path) -> dict:
    """{'files', 'bytes'} of everything in an artifact folder but its manifest: recorded when it
    is published and compared when it is reused, so a folder that lost files is never reused."""
    files = size = 0
    for top, _, names in os.walk(folder):
        for n in names:
            if top == str(folder) and n == MANIFEST:
                continue
            files += 1
            size += os.lstat(os.path.join(top, n)).st_size
    return {"files": files, "bytes": size}


def json_safe(obj: Any) -> Any:
    """`obj` with every non-finite float as None, so what gdrive writes is always valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dump_json(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=1, default=str, allow_nan=False) + "\n"


class ArtifactWriter:
    """Builds one artifact in an owned temporary folder; `finish` publishes it.

    Every file handed out by `path` / `write_*` or announced with `expect` must still be there when
    the artifact is finished: a publish checks its own contents before the manifest is written.
    """

    def __init__(self, ws: Workspace, kind: str, name: str):
        self.ws, self.kind, self.name = ws, kind, name
        self.root = ws.kind_dir(kind)
        self._temp = OwnedTemp(self.root, name)  # publish checked the name
        self.tmp = self._temp.path
        self._expected: set[str] = set()

    def path(self, rel: str) -> Path:
        self.expect([rel])
        p = self.tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def expect(self, rels) -> None:
        """Files written into `tmp` (here, by worker processes or by libraries) that must be there."""
        for rel in rels:
            inside(self.tmp, rel, f"{self.kind} '{self.name}'")
            self._expected.add(str(Path(rel)))

    def write_bytes(self, rel: str, data: bytes) -> Path:
        p = self.path(rel)
        p.write_bytes(data)
        return p

    def write_json(self, rel: str, obj: Any) -> Path:
        return self.write_bytes(rel, dump_json(obj).encode())

    def check_contents(self) -> None:
        missing = sorted(r for r in self._expected if not (self.tmp / r).is_file())
        if missing:
            raise RunFailure(f"{self.kind} '{self.name}': {len(missing)} of its {len(self._expected)} files vanished "
                             f"while it was written (first: {missing[0]}); nothing was published, run it again")

    def finish(self, manifest: dict) -> Artifact:
        """Check the contents, write the manifest last, sync, and rename the folder into place
        (replacing any old one)."""
        self.check_contents()
        self._temp.seal()
        manifest = {**manifest, "contents": folder_contents(self.tmp)}
        with open(self.tmp / MANIFEST, "w") as fh:
            fh.write(dump_json(manifest))
            fh.flush()
            os.fsync(fh.fileno())
        target = self.root / self.name
        replace_dir(self.tmp, target)
        return Artifact(self.kind, self.name, target, manifest)

    def abort(self) -> None:
        self._temp.discard()


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename a finished folder into place, swapping out any old one (kept as `.old-*` until the
    new one is in place, so a crash between the renames loses nothing: `recover_dir` restores it)."""
    old = None
    if target.exists():
        old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:12]}"
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

    Raises BadInput when the name breaks the name rule, is taken by another configuration (unless
    `force`), or by a folder that is not a gdrive artifact of this kind (always: `--force` only
    replaces an artifact of the same kind, and nothing of the user's is ever deleted). An artifact
    of this id that lost files since it was published is not reused (None: it is rebuilt). Stages
    that run long before publishing (training) call this first, so a clash is reported before the work.
    """
    target = ws.kind_dir(kind) / check_name(name)
    if not target.exists() and not target.is_symlink():
        return None
    existing = read_manifest(target) if target.is_dir() and not target.is_symlink() else None
    if not _is_artifact(existing, kind):
        other = existing.get("kind") if existing else None
        what = f"holds a gdrive {other}, not a {kind}" if isinstance(other, str) and other != kind else \
            f"exists but is not a gdrive {kind}"
        raise BadInput(f"--name {name}: {target} {what}; nothing there is replaced (not even with --force), "
                       "move it away or pick another --name")
    if force:
        return None
    if existing["id"] == ident:
        want = existing.get("contents")
        have = folder_contents(target) if isinstance(want, dict) else want
        if have != want:
            ui.warn(f"{kind} '{name}' (id {ident}) no longer holds what it was published with "
                    f"({have['files']} of {want.get('files')} files); rebuilding it")
            return None
        return Artifact(kind, name, target, existing)
    raise BadInput(
        f"--name {name}: a {kind} of that name exists with another configuration "
        f"(id {str(existing['id'])[:8]}, this run {ident[:8]}); pass --force to replace it or pick another --name"
    )


# errno values that mean the disk (or the quota) is full: the run cannot go on, whatever the input
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def say_reused(noun: str, name: str, ident: str) -> None:
    """The line every stage prints when it reuses an artifact instead of making it again."""
    ui.info(f"reusing {noun} '{name}' (id {ident}): same inputs and settings; pass --force to recompute")


def say_written(noun: str, name: str, ident: str, path: Path) -> None:
    ui.info(f"wrote {noun} '{name}' (id {ident}) to {path}")


def publish(ws: Workspace, kind: str, stage: str, schema: int, name: str, config: dict,
            id_fields: dict, inputs: dict, build, force: bool = False, noun: str | None = None) -> PublishResult:
    """Reuse the artifact `name` if its id matches, else build it atomically under the lock.

    `build(writer) -> dict` writes the artifact's files and returns extra manifest fields. An
    existing artifact of that name with another id is an error unless `force` (nothing is lost).
    With `noun` ("forecast", "edited dataset"), says which happened (say_reused / say_written).
    """
    check_name(name)  # before anything is made in the workspace
    ident = artifact_id(stage, schema, id_fields, inputs)
    ws.ensure_writable()
    root = ws.kind_dir(kind)
    root.mkdir(parents=True, exist_ok=True)
    with artifact_lock(ws, kind, name):
        recover_dir(root, name)
        reuse = reusable_artifact(ws, kind, name, ident, force)
        if reuse is not None:
            if noun:
                say_reused(noun, name, ident)
            return PublishResult(reuse, reused=True)
        writer = ArtifactWriter(ws, kind, name)
        try:
            extra = build(writer) or {}
            manifest = base_manifest(kind, stage, schema, ident, name, config, id_fields, inputs)
            manifest.update(extra)
            art = writer.finish(manifest)
            if noun:
                say_written(noun, name, ident, art.path)
        except OSError as exc:
            writer.abort()
            if exc.errno in _DISK_FULL:
                raise RunFailure(f"{writer.root}: {exc.strerror} while writing {kind} '{name}'; nothing was "
                                 "published (the temporary folder is removed); free space and run again") from exc
            raise
        except BaseException:
            writer.abort()
            raise
        return PublishResult(art, reused=False)

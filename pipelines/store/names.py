"""Names that become paths: artifact names from flags, and path components read from files.

One rule for every artifact kind, checked before any work: an artifact name is 1-120 characters
of ASCII letters, digits, '.', '_' and '-', starting with a letter or digit (so never '.', '..',
a hidden folder, an absolute path or anything with '/'), and not the reserved word 'latest'.
Scene names, frame tokens and other components that files (scene.json, poses.csv, manifests,
Occ3D folders) put into paths follow the same character rule (with '+', which forecast tokens
use) and at most 200 characters, so `<component>/<component>` never leaves the folder it is
joined to.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import BadInput

MAX_NAME = 120
MAX_COMPONENT = 200
RESERVED = ("latest",)  # `--dataset latest` means the newest, so no artifact may be called that
NAME_RULE = (f"a name is 1-{MAX_NAME} characters of letters, digits, '.', '_' and '-', starting with a "
             "letter or digit")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_ID = re.compile(r"[0-9a-f]{16}")


def _shown(text: str) -> str:
    """The value as it may be printed on one line (escapes, and cut when very long)."""
    s = ascii(text)[1:-1]
    return s if len(s) <= 60 else f"{s[:40]}... ({len(text)} characters)"


def is_valid_name(name: object) -> bool:
    return (isinstance(name, str) and 0 < len(name) <= MAX_NAME and _NAME.fullmatch(name) is not None
            and name not in RESERVED)


def check_name(name: object, flag: str = "--name") -> str:
    """`name` if it follows the artifact-name rule, else BadInput naming the rule and the limit."""
    if not isinstance(name, str):
        raise BadInput(f"{flag}: must be a string ({NAME_RULE}), got {type(name).__name__}")
    if name in RESERVED:
        raise BadInput(f"{flag} '{name}': is reserved (it means the newest artifact); pick another {flag}")
    if not is_valid_name(name):
        raise BadInput(f"{flag} '{_shown(name)}': not a valid artifact name: {NAME_RULE}; pick another {flag}")
    return name


def check_component(text: object, where: str, what: str) -> str:
    """A path component read from a file (scene name, frame token, ...), else BadInput naming the file."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_COMPONENT or _COMPONENT.fullmatch(text) is None:
        shown = _shown(text) if isinstance(text, str) else type(text).__name__
        raise BadInput(f"{where}: {what} '{shown}' cannot be a file name: use 1-{MAX_COMPONENT} letters, digits, "
                       "'.', '_', '+' and '-', starting with a letter or digit; rename it in the source")
    return text


def check_id(ident: object, where: str) -> str:
    """An artifact id read from a manifest: 16 lowercase hex digits (ids name cache folders)."""
    if not isinstance(ident, str) or _ID.fullmatch(ident) is None:
        raise BadInput(f"{where}: its id {_shown(str(ident))} is not 16 hex digits; the manifest was edited or "
                       "damaged, make the artifact again")
    return ident


def default_name(prefix: str, ident: str) -> str:
    """`<prefix>-<ident[:6]>` made to follow the name rule: other characters become '_', and a
    long prefix is cut (its tail replaced by a short hash, so two long prefixes stay apart)."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", prefix).lstrip("._-") or "artifact"
    room = MAX_NAME - 7
    if len(clean) > room:
        clean = clean[: room - 7] + "-" + hashlib.sha256(clean.encode()).hexdigest()[:6]
    return check_name(f"{clean}-{ident[:6]}")


def inside(root: Path, rel: str | Path, where: str = "artifact") -> Path:
    """`root / rel` when it stays inside `root` (a relative path of plain components), else a
    RuntimeError: code that would write outside an artifact's folder is a bug, never a request."""
    rel = Path(rel)
    if rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts) or "\x00" in str(rel):
        raise RuntimeError(f"refusing to write {str(rel)!r} outside {where} folder {root}")
    return root / rel

"""YAML recipes (`--config FILE`): flags override them, and the resolved config is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import BadInput


def load_recipe(path: str | None, allowed: set[str]) -> dict[str, Any]:
    """Read a YAML mapping whose keys are a command's option names (dashes or underscores)."""
    if not path:
        return {}
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"--config {p}: no such file; pass a YAML recipe (see assets/recipes/)")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"--config {p}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise BadInput(f"--config {p}: expected a mapping of option names to values, got {type(raw).__name__}")
    out = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(out) - allowed)
    if unknown:
        raise BadInput(f"--config {p}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return out


def merge(flags: dict[str, Any], recipe: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Flag (when given, i.e. not None) > recipe > default."""
    return {k: flags[k] if flags.get(k) is not None else recipe.get(k, defaults[k]) for k in defaults}

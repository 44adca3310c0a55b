"""YAML recipes (`--config FILE`): flags override them, and the resolved config is saved.

A recipe is input like a flag: UTF-8, a mapping of the command's option names, and every value of
the option's type (`scenes: 1.5`, `scenes: true` or `force: "yes please"` exit 2 naming the key).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..pipelines.errors import BadInput
from ..pipelines.limits import read_text_file


def option_types(request_cls: type) -> dict[str, Any]:
    """Field name -> type of a request dataclass (the types a recipe's values must have)."""
    hints = typing.get_type_hints(request_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(request_cls)}


def load_recipe(path: str | None, allowed: dict[str, Any]) -> dict[str, Any]:
    """Read a YAML mapping whose keys are a command's option names (dashes or underscores) and
    whose values have the options' types (`allowed`: name -> type, see `option_types`)."""
    if not path:
        return {}
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"--config {p}: no such file; pass a YAML recipe (see assets/recipes/)")
    text = read_text_file(p, "YAML recipe", "--config")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"--config {p}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
    if not isinstance(raw, dict):
        raise BadInput(f"--config {p}: expected a mapping of option names to values, got {type(raw).__name__}")
    out = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(out) - set(allowed))
    if unknown:
        raise BadInput(f"--config {p}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    for key, value in out.items():
        if not value_fits(value, allowed[key]):
            raise BadInput(f"--config {p}: '{key}: {value!r}' is a {type(value).__name__}, the option takes "
                           f"{type_name(allowed[key])}; fix the value")
    return out


def value_fits(value: Any, tp: Any) -> bool:
    """Whether a YAML value has type `tp` (bool is no number, an int is a float, None only when optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (dict, list, tuple):
        return isinstance(value, origin)
    return isinstance(value, tp) if isinstance(tp, type) else True


def type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(type_name(t) for t in typing.get_args(tp))
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    names = {bool: "true/false", int: "a whole number", float: "a number", str: "text", dict: "a mapping",
             list: "a list"}
    return names.get(origin or tp, getattr(tp, "__name__", str(tp)))


def resolve_request(request_cls: type, flags: dict[str, Any], recipe: str | None = None, **fixed: Any) -> Any:
    """A command's request: each field from its flag when given (not None), else from the recipe
    (`--config FILE`), else the dataclass default, the one place a command's defaults are declared
    (its options default to None, "not given"; the help shows the dataclass defaults).

    `flags` are the command's parameters by name (`locals()` at its start); names that are no
    field (the recipe path, `--list`) are left out. `fixed` fields come from the global options
    (seed, device): they are no recipe keys and override everything."""
    fields = [f.name for f in dataclasses.fields(request_cls) if f.name not in fixed]
    types = option_types(request_cls)
    values = load_recipe(recipe, {k: types[k] for k in fields})
    values.update({k: flags[k] for k in fields if flags.get(k) is not None})
    return request_cls(**values, **fixed)

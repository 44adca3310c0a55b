"""Defaults in every help: a command's options default to None ("not given", so a recipe or the
request fills them in), and their defaults live once, in the command's request dataclasses. This
writes each of those defaults into its option's help as `[default: VALUE]`.

Options whose request default is None (a derived name, "the video model's", "all") say in their
own help text what happens when they are left out; `tests/test_cli.py` checks that every option
of every command shows one or the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable


def shown_default(value: Any, option: Any) -> str | None:
    """The text after `default:` for a request default; None when there is nothing to show."""
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, bool):  # --previews/--no-previews: the flag in effect; a plain switch is off
        secondary = getattr(option, "secondary_opts", None)
        return (option.opts if value else secondary)[0] if secondary else None
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def request_defaults(requests: Iterable[type]) -> dict[str, Any]:
    """Field name -> default over a command's requests (the first request naming a field wins)."""
    out: dict[str, Any] = {}
    for cls in requests:
        for f in dataclasses.fields(cls):
            if f.name in out:
                continue
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
    return out


def show_request_defaults(command: Any, requests: Iterable[type]) -> None:
    """Append `[default: VALUE]` to the help of each option of `command` (a click command) whose
    default comes from `requests`."""
    defaults = request_defaults(requests)
    for param in command.params:
        if param.name not in defaults or not hasattr(param, "help"):
            continue
        text = shown_default(defaults[param.name], param)
        if text is not None:
            param.help = f"{param.help or ''}  [default: {text}]".strip()

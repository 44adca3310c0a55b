"""Global options, accepted before or after the command name.

`gdrive --json prepare-occ ...` and `gdrive prepare-occ ... --json --seed 0` mean the same: the
global flags are taken out of the argument list before the command parses the rest.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from ..pipelines.errors import BadInput
from ..pipelines.limits import MAX_SEED
from ..pipelines.store.artifacts import json_safe


@dataclasses.dataclass
class GlobalOptions:
    workspace: str | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    seed: int | None = None
    device: str = "auto"


# name -> (takes a value, help)
GLOBAL_FLAGS: dict[str, tuple[bool, str]] = {
    "--workspace": (True, "Workspace folder (default $GDRIVE_WORKSPACE, else ./gdrive-workspace)."),
    "--json": (False, "Print one JSON object on stdout (artifact paths, ids, metrics) for scripts."),
    "--quiet": (False, "No progress or messages on stderr."),
    "--debug": (False, "Show tracebacks on errors."),
    "--seed": (True, "Random seed; makes CPU results repeatable (default 0)."),
    "--device": (True, "auto | cpu | cuda | cuda:N (default auto)."),
}

state = GlobalOptions()


def split_global_options(argv: list[str]) -> tuple[GlobalOptions, list[str]]:
    """Pull the global flags out of argv (anywhere before a bare `--`); return them and the rest."""
    opts = GlobalOptions()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        key, eq, inline = arg.partition("=")
        if key in GLOBAL_FLAGS:
            takes_value = GLOBAL_FLAGS[key][0]
            if takes_value:
                if eq:
                    value = inline
                elif i + 1 < len(argv):
                    i += 1
                    value = argv[i]
                else:
                    raise BadInput(f"{key}: needs a value; see gdrive --help")
                _set(opts, key, value)
            else:
                if eq:
                    raise BadInput(f"{key}: is a switch and takes no value")
                setattr(opts, key[2:], True)
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def _set(opts: GlobalOptions, key: str, value: str) -> None:
    if key == "--seed":
        try:
            opts.seed = int(value)
        except ValueError:
            raise BadInput(f"--seed '{value}': not an integer; pass a whole number such as --seed 0") from None
        if not 0 <= opts.seed <= MAX_SEED:
            raise BadInput(f"--seed {opts.seed}: must be a whole number from 0 to {MAX_SEED:,} (2^32 - 1)")
    elif key == "--device":
        if not (value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())):
            raise BadInput(f"--device '{value}': use auto, cpu, cuda or cuda:N")
        opts.device = value
    else:
        if not value.strip():
            raise BadInput("--workspace '': empty; pass a folder (or leave the flag out for $GDRIVE_WORKSPACE, "
                           "else ./gdrive-workspace)")
        opts.workspace = value


def emit(result: dict[str, Any]) -> None:
    """With --json, print the command's result as one JSON object on stdout (always valid JSON:
    a non-finite number is written as null)."""
    if state.json:
        sys.stdout.write(json.dumps(json_safe(result), default=str, allow_nan=False) + "\n")
        sys.stdout.flush()

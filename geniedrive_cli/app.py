"""The `gdrive` command line: one table maps each command to a plain function.

A command is registered here only once it works; `tests/test_cli.py` checks that `gdrive --help`
lists exactly this table. Exit codes: 0 success, 2 bad usage or input (one line, no traceback),
1 failure at run time; `--debug` shows tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from typing import Callable

import typer

try:  # Typer >= 0.22 vendors its own click; older ones use click itself.
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import NoArgsIsHelpError, UsageError

from . import edit, evaluate, finetune_video, forecast, generate, import_weights, list_cmd, model_info, options, prepare_occ, render, train_forecaster, train_vae
from .help_defaults import show_request_defaults
from ..pipelines import __version__
from ..pipelines.console import ui
from ..pipelines.errors import GdriveError

_MODULES = {
    "prepare-occ": prepare_occ,
    "model-info": model_info,
    "import-weights": import_weights,
    "train-vae": train_vae,
    "train-forecaster": train_forecaster,
    "forecast": forecast,
    "edit": edit,
    "render": render,
    "generate": generate,
    "finetune-video": finetune_video,
    "evaluate": evaluate,
    "list": list_cmd,
}
COMMANDS: dict[str, Callable[..., None]] = {name: module.command for name, module in _MODULES.items()}
# the request dataclasses that hold each command's option defaults (see help_defaults)
REQUESTS: dict[str, tuple[type, ...]] = {name: getattr(module, "REQUESTS", ()) for name, module in _MODULES.items()}

_GLOBAL_HELP = "Global options (before or after the command): " + "; ".join(
    f"{k}{' VALUE' if v[0] else ''}: {v[1]}" for k, v in options.GLOBAL_FLAGS.items()
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="gdrive",
        help="gdrive: physics-aware driving world models (occupancy, forecasting, sensors, video).\n\n" + _GLOBAL_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback(invoke_without_command=True)
    def _root(
        version: bool = typer.Option(False, "--version", help="Print the gdrive version and exit."),
    ) -> None:
        if version:
            print(f"gdrive {__version__}")
            raise typer.Exit(0)

    for name, fn in COMMANDS.items():
        app.command(name, epilog=_GLOBAL_HELP)(fn)
    return app


def build_command():
    """The click command of `build_app()`, each option's help showing its request default."""
    group = typer.main.get_command(build_app())
    for name, requests in REQUESTS.items():
        show_request_defaults(group.commands[name], requests)
    return group


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Terminated(BaseException):
    """SIGTERM (`kill`, `timeout`, a scheduler): unwinds like Ctrl-C, so temporaries are removed."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _fail(opts: options.GlobalOptions, command: str | None, message: str, code: int) -> int:
    """One line on stderr; with --json also one JSON object on stdout, so scripts always get one."""
    print(f"error: {message}", file=sys.stderr)
    if opts.json:
        sys.stdout.write(json.dumps({"command": command, "error": message, "exit_code": code}) + "\n")
    return code


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or type(exc).__name__} (OSError {exc.errno}); check the disk and permissions " \
           "and run again (--debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts, rest = options.split_global_options(argv)
    except GdriveError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 talks
        opts.quiet, opts.json = True, False
    options.state.__dict__.update(vars(opts))  # in place: command modules hold this object
    ui.configure(quiet=opts.quiet)
    command = next((a for a in rest if a in COMMANDS), None)
    cmd = build_command()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        rv = cmd.main(args=rest, prog_name="gdrive", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0  # typer.Exit and Ctrl-C come back as a return code
        if code == 130:  # typer turns KeyboardInterrupt into Exit(130); cleanup has run as it unwound
            return _fail(opts, command, "interrupted", 130)
        return code
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx is not None else "see gdrive --help")
        return 0
    except UsageError as exc:
        where = f"gdrive {exc.ctx.info_name}" if exc.ctx is not None and exc.ctx.info_name != "gdrive" else "gdrive"
        return _fail(opts, command, f"{_one_line(exc.format_message()).rstrip('.')}; see '{where} --help'", 2)
    except typer.Abort:
        return _fail(opts, command, "aborted", 130)
    except GdriveError as exc:
        if opts.debug:
            traceback.print_exc()
        return _fail(opts, command, _one_line(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail(opts, command, "interrupted", 130)
    except Terminated:
        return _fail(opts, command, "terminated (SIGTERM)", 143)
    except OSError as exc:  # the environment: disk, permissions, a vanished file
        if opts.debug:
            traceback.print_exc()
        return _fail(opts, command, _one_line(_os_error(exc)), 1)
    except Exception as exc:  # a bug or an environment failure: exit 1, one line unless --debug
        if opts.debug:
            traceback.print_exc()
        return _fail(opts, command, f"{type(exc).__name__}: {_one_line(exc)} (run again with --debug for the traceback)", 1)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def run() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head` and friends
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    run()

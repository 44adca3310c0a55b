"""The `gdrive` command line: one table maps each command to a plain function.

A command is registered here only once it works; `tests/test_cli.py` checks that `gdrive --help`
lists exactly this table. Exit codes: 0 success, 2 bad usage or input (one line, no traceback),
1 failure at run time; `--debug` shows tracebacks.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable

import typer

try:  # Typer >= 0.22 vendors its own click; older ones use click itself.
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import NoArgsIsHelpError, UsageError

from geniedrive_cli import edit, evaluate, finetune_video, forecast, generate, model_info, options, prepare_occ, render, train_forecaster, train_vae
from pipelines import __version__
from pipelines.console import ui
from pipelines.errors import GdriveError

COMMANDS: dict[str, Callable[..., None]] = {
    "prepare-occ": prepare_occ.command,
    "model-info": model_info.command,
    "train-vae": train_vae.command,
    "train-forecaster": train_forecaster.command,
    "forecast": forecast.command,
    "edit": edit.command,
    "render": render.command,
    "generate": generate.command,
    "finetune-video": finetune_video.command,
    "evaluate": evaluate.command,
}

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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


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
    cmd = typer.main.get_command(build_app())
    try:
        cmd.main(args=rest, prog_name="gdrive", standalone_mode=False)
        return 0
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx is not None else "see gdrive --help")
        return 0
    except UsageError as exc:
        where = f"gdrive {exc.ctx.info_name}" if exc.ctx is not None and exc.ctx.info_name != "gdrive" else "gdrive"
        print(f"error: {_one_line(exc.format_message()).rstrip('.')}; see '{where} --help'", file=sys.stderr)
        return 2
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except GdriveError as exc:
        if opts.debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment failure: exit 1, one line unless --debug
        if opts.debug:
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {_one_line(exc)} (run again with --debug for the traceback)", file=sys.stderr)
        return 1


def run() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head` and friends
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    run()

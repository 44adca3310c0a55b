"""One shared console for the whole toolkit: rich on stderr, plain lines when not a terminal.

Stages report through `ui` (info, warn, progress, table) so the command line decides once how
output looks: `--quiet` silences it, `--json` keeps stdout for the one JSON object.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

T = TypeVar("T")


class UI:
    def __init__(self) -> None:
        self.quiet = False
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def configure(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False, soft_wrap=True, quiet=quiet)

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal and not self.quiet

    def info(self, msg: str) -> None:
        self.console.print(msg, markup=False)

    def warn(self, msg: str) -> None:
        self.console.print(f"warning: {msg}", markup=False, style="yellow")

    def table(self, title: str, columns: list[str], rows: list[list], stdout: bool = False) -> None:
        """A titled table on stderr with the other messages, or on stdout when it is the command's
        result (`gdrive list`: a listing one pipes into grep)."""
        t = Table(title=title)
        for c in columns:
            t.add_column(c)
        for r in rows:
            t.add_row(*[str(v) for v in r])
        if stdout:
            Console(highlight=False, soft_wrap=True, quiet=self.quiet).print(t)
        else:
            self.console.print(t)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator["ProgressHandle"]:
        """A progress bar on a terminal, a plain line every ~10 % (and at the end) otherwise."""
        if self.interactive:
            bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"), console=self.console, transient=False,
            )
            with bar:
                task = bar.add_task(description, total=total, status="")
                yield ProgressHandle(lambda n, status: bar.update(task, advance=n, status=status))
        else:
            state = {"done": 0, "last": -1, "t0": time.perf_counter()}

            def advance(n: int, status: str) -> None:
                state["done"] += n
                step = max(1, total // 10)
                if self.quiet:
                    return
                if state["done"] >= total or state["done"] // step != state["last"]:
                    state["last"] = state["done"] // step
                    el = time.perf_counter() - state["t0"]
                    extra = f" {status}" if status else ""
                    print(f"{description}: {state['done']}/{total} ({el:.1f}s){extra}", file=sys.stderr, flush=True)

            yield ProgressHandle(advance)

    def track(self, items: Iterable[T], description: str, total: int) -> Iterator[T]:
        with self.progress(description, total) as p:
            for it in items:
                yield it
                p.advance()


class ProgressHandle:
    def __init__(self, fn) -> None:
        self._fn = fn

    def advance(self, n: int = 1, status: str = "") -> None:
        self._fn(n, status)


ui = UI()

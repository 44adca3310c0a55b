"""Worker processes that never outlive the run that started them.

`prepare-occ --workers N` builds scenes in spawned processes. If the parent is killed (even with
SIGKILL) its workers must stop too: they write into the parent's temporary folder, and once the
parent is gone nothing owns that folder. Each worker asks the kernel for SIGKILL when its parent
dies (Linux `PR_SET_PDEATHSIG`) and, where that is missing, watches its parent's pid. Ctrl-C is
left to the parent, which ends the workers itself (`worker_pool`), so one interrupt prints one
line, not a traceback per worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a worker: get SIGKILL when the parent process `parent` dies, and ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watcher below does the job
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


@contextlib.contextmanager
def worker_pool(workers: int, initializer: Callable, initargs: tuple) -> Iterator[ProcessPoolExecutor]:
    """A spawn-context process pool; on any exception (Ctrl-C included) its workers are ended at
    once instead of finishing the queued work."""
    ctx = mp.get_context("spawn")  # never fork a process that may hold threads
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        processes = list(getattr(pool, "_processes", {}).values())  # the stdlib keeps them here
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.kill()
        for p in processes:
            p.join(timeout=5)
        raise
    else:
        pool.shutdown(wait=True)

"""The `themis` console script's process: the command, then the process ends without tearing
down the interpreter.

After a command is done, the interpreter's shutdown would free every module and object one by
one: 30-60 ms after a 10,000-trial run (issue 12, ADR 0085), for memory the system takes back
at once when the process ends. `console_main` ends the process itself, with the command's
status, once nothing is left to do: every thread but the main one is a daemon or has ended (a
command closes its stores, files and worker threads before it returns), the `atexit` handlers
have run and stdout and stderr are flushed. Otherwise (a thread still running, a flush that
fails, an exception escaping the command) it leaves the exit to the interpreter, as before.

Only the console script does this; `main`, which tests and benches call in-process, returns
or raises as it always did.

The console script's process also keeps numpy's BLAS (OpenBLAS) to one thread, unless its
environment names a count (`OPENBLAS_NUM_THREADS`): importing numpy (a run's end from 20,000
trials, a report's columns) otherwise starts a BLAS thread per further core first, ~0.04 s of
CPU and of the import's wall on two cores and more with more, for matrix products Themis never
computes (ADR 0110). A library call leaves its host process's environment alone.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Final, NoReturn

from themis.app.cli.application import app, main

# `app` is the typer app this script runs (the docs' command reference reads it from here).
__all__ = ["BLAS_THREADS", "app", "console_main", "exit_status"]


# The environment variable OpenBLAS reads its thread count from when numpy loads it, and the
# count the console script's process keeps when it is not set.
BLAS_THREADS: Final = ("OPENBLAS_NUM_THREADS", "1")


def console_main() -> NoReturn:
    """The `themis` console script: `main`, then the process's end with its status."""
    os.environ.setdefault(*BLAS_THREADS)
    try:
        main()
    except SystemExit as ending:
        code = ending.code
    else:
        code = None
    status = exit_status(code)
    if status is None or _threads_still_running():
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter's exit runs first (logging's flush, ...)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # let the interpreter's exit deal with it, as before
        sys.exit(code)
    os._exit(status)


def exit_status(code: object) -> int | None:
    """The status a `SystemExit(code)` ends the process with, as the interpreter reads it
    (`None` is 0, an int, `True` and `False` included, is itself modulo 256), or `None` for a
    code it would print first (a message) or could not pass to the system as a C `int`."""
    if code is None:
        return 0
    if isinstance(code, int) and -(2**31) <= code < 2**31:
        return int(code) & 0xFF
    return None


def _threads_still_running() -> bool:
    """Whether a thread the interpreter's exit would wait for is still running."""
    main_thread = threading.main_thread()
    return any(
        thread is not main_thread and not thread.daemon and thread.is_alive()
        for thread in threading.enumerate()
    )

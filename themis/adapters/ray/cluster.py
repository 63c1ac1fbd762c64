"""Joining a Ray cluster for one execution, and awaiting Ray's results from trio.

Ray is synchronous and asyncio-based, the interpreter is trio: a result is awaited by asking
its `ObjectRef` for a `concurrent.futures.Future`, whose done-callback (on a Ray thread) wakes
the waiting trio task through the run's token. No thread is held per call in flight.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import ray
import ray._private.worker as ray_worker
import trio

__all__ = ["cluster_cpus", "joined_cluster", "result_of"]


@contextmanager
def joined_cluster(address: str | None) -> Iterator[None]:
    """Ray, connected for the block: to the cluster at `address` (`auto`, `HOST:PORT`,
    `ray://HOST:PORT`), or to a new local one started here (`None`; one worker per CPU; never a
    cluster `ray start` left running on this machine), which is
    stopped afterwards. A process already connected (a notebook's `ray.init`) keeps its
    connection: it is neither replaced nor shut down."""
    if ray.is_initialized():
        yield
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,  # workers' output would interleave with the progress display
    }
    if address is None:
        ray.init(address="local", num_cpus=os.cpu_count() or 1, **options)
    else:
        ray.init(address=address, **options)
    printing = ray_worker.print_to_stdstream
    ray_worker.print_to_stdstream = functools.partial(_on_stderr, printing)
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = printing
        ray.shutdown()


def _on_stderr(printing: Callable[..., None], data: dict[str, Any], ignore_prefix: bool) -> None:
    """Ray's driver prints the cluster's error messages ("a worker died") on stdout, where they
    would corrupt `--json` output: they go to stderr (through Ray 2.60's own printer)."""
    printing({**data, "is_err": True}, ignore_prefix)


def cluster_cpus() -> int:
    """The CPUs the cluster has (at least 1): how many sandboxed runs it serves at once."""
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))


async def result_of(ref: ray.ObjectRef[Any]) -> Any:
    """The value `ref` resolves to, awaited without blocking trio; raises Ray's error for a
    task or actor that failed or died. Cancelling the wait leaves the remote work running."""
    token = trio.lowlevel.current_trio_token()
    ready = trio.Event()
    future = ref.future()

    def wake(_: object) -> None:
        with suppress(trio.RunFinishedError):  # the waiter's run already ended
            token.run_sync_soon(ready.set)

    future.add_done_callback(wake)
    await ready.wait()
    return future.result()

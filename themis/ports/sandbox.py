"""`SandboxPort`: run untrusted commands against files in a fresh, isolated workspace.

Its adapters: `themis.adapters.sandbox` on this machine, `themis.adapters.ray.sandbox` on a Ray
cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Protocol, TypeVar

from themis.core.execution import CommandOutcome, SandboxCommand

T = TypeVar("T")

# Given the workspace's path, a sans-IO flow of commands (`themis.core.execution`).
Flow = Callable[[str], Generator[SandboxCommand, CommandOutcome, T]]


class SandboxPort(Protocol):
    """A place to run candidates' code. Blocking: callers run it off their event loop.

    `run` writes `files` (relative path → text) into a fresh workspace, runs every command the
    flow yields there under the sandbox's limits, sends back each outcome, removes the
    workspace, and returns what the flow returns. A command that fails, hangs or misbehaves is
    an outcome, never an exception. `gaps` says what this sandbox cannot enforce on this
    machine (e.g. the network), empty when nothing is missing. `capacity`: how many runs it
    serves at once without queueing them (its CPUs: this machine's, or a cluster's).
    """

    @property
    def gaps(self) -> tuple[str, ...]: ...

    @property
    def capacity(self) -> int: ...

    def run(self, files: Mapping[str, str], flow: Flow[T]) -> T: ...

"""Model calls on a Ray cluster: a `ModelHost` actor per provider, and `RayModel`, its port.

The host is a threaded Ray actor (no CPU reserved: calls wait on the network) that builds the
provider's own `ModelPort` in its worker process, from a picklable zero-argument factory, and
runs it on a trio loop of its own; each call arrives on an actor thread and is handed to that
loop. The factory carries the config as written: an endpoint's `${VAR}` credentials are
resolved by the adapter at call time, on the worker, from the worker's environment.

`RayModel` is what the driver's interpreter calls: the grant of every rate limit, the breaker,
the budget and the timeouts stay with the caller (`themis.app.execution.calls`), which takes
them before `generate` dispatches the request. It is a plain `ModelPort`: its request leaves
the driver when it is dispatched.

Failures: a `ModelCallError` raised on the worker travels back as a `RemoteFailure` value (an
exception with keyword arguments does not survive pickling) and is raised again here. When
the worker process dies, the call fails as `worker_lost` (retryable; no breaker counts it)
once Ray has restarted the host, so the retry finds it serving again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import ray
import trio
from attrs import frozen
from ray.exceptions import ObjectLostError, RayActorError, WorkerCrashedError

from themis.adapters.ray.cluster import result_of
from themis.core.errors import ThemisError
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.core.retry import FailureKind
from themis.ports.model import ModelPort

__all__ = ["ModelFactory", "ModelHost", "RayModel", "RemoteFailure", "hosted_models"]

# Seconds a call waits for a dead host to be restarted before it fails as `worker_lost`.
RESTART_PATIENCE_S = 120.0
# Seconds `ModelHost.close` waits for its trio loop to end.
LOOP_END_PATIENCE_S = 10.0
# Seconds `hosted_models` waits, on exit, for its hosts' `close` before killing them all the same.
CLOSE_PATIENCE_S = LOOP_END_PATIENCE_S + 5.0
LOST = (RayActorError, WorkerCrashedError, ObjectLostError)


class ClosableModel(ModelPort, Protocol):
    def close(self) -> None: ...


ModelFactory = Callable[[], ClosableModel]


@frozen
class RemoteFailure:
    """A `ModelCallError` raised on the worker, as a value that pickles."""

    kind: str
    message: str
    retry_after_s: float | None
    status: int | None

    @classmethod
    def of(cls, error: ModelCallError) -> RemoteFailure:
        return cls(str(error.kind), error.message, error.retry_after_s, error.status)

    def error(self) -> ModelCallError:
        return ModelCallError(
            self.kind, self.message, retry_after_s=self.retry_after_s, status=self.status
        )


class ModelHost:
    """The provider's model, served in a Ray worker process (see the module docstring).

    `call_timeout` bounds each call here too, so a call the driver gave up on ends on the
    worker as well instead of holding a thread."""

    def __init__(self, build: ModelFactory, call_timeout: float | None) -> None:
        self._model = build()
        self._timeout = call_timeout
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop = threading.Event()
        serving = threading.Event()

        async def serve() -> None:
            self._token = trio.lowlevel.current_trio_token()
            serving.set()
            await trio.to_thread.run_sync(self._stop.wait, abandon_on_cancel=True)

        self._loop = threading.Thread(
            target=trio.run, args=(serve,), name="themis-model-host", daemon=True
        )
        self._loop.start()
        serving.wait()

    def generate(self, request: ModelRequest) -> ModelResponse | RemoteFailure:
        try:
            response: ModelResponse = trio.from_thread.run(
                self._call, request, trio_token=self._token
            )
        except ModelCallError as error:
            return RemoteFailure.of(error)
        return response

    async def _call(self, request: ModelRequest) -> ModelResponse:
        with trio.move_on_after(self._timeout if self._timeout is not None else float("inf")):
            return await self._model.generate(request)
        raise ModelCallError(FailureKind.TIMEOUT.value, "no answer in time (on the Ray worker)")

    def ready(self) -> bool:
        """Answers once the host serves (after a restart, too)."""
        return True

    def close(self) -> None:
        """End the trio loop (calls still on it are cancelled) and wait for its thread, then
        close the model, which no call uses any more. A loop still running after
        `LOOP_END_PATIENCE_S` (a call blocking it) is a `ThemisError`; the model stays open."""
        self._stop.set()
        self._loop.join(LOOP_END_PATIENCE_S)
        if self._loop.is_alive():
            raise ThemisError(
                f"the model host's event loop did not end {LOOP_END_PATIENCE_S:g} s after close:"
                " a model call blocks it (a synchronous wait inside `generate`?)"
            )
        self._model.close()


class RayModel:
    """The driver's port to a provider's `ModelHost`; `base_url` scopes the provider's
    breaker and pauses as the adapter it stands for would."""

    def __init__(self, host: Any, provider: str, base_url: str | None) -> None:
        self._host = host
        self.provider = provider
        self.base_url = base_url

    async def generate(self, request: ModelRequest) -> ModelResponse:
        try:
            answer = await result_of(self._host.generate.remote(request))
        except LOST as error:
            await self._wait_restarted()
            raise ModelCallError(
                FailureKind.WORKER_LOST.value,
                f"the Ray worker serving provider {self.provider!r} died during the call "
                f"({type(error).__name__})",
            ) from None
        if isinstance(answer, RemoteFailure):
            raise answer.error()
        response: ModelResponse = answer
        return response

    async def _wait_restarted(self) -> None:
        with trio.move_on_after(RESTART_PATIENCE_S):
            while True:
                try:
                    await result_of(self._host.ready.remote())
                    return
                except LOST:
                    await trio.sleep(0.5)


@contextmanager
def hosted_models(
    factories: Mapping[str, tuple[ModelFactory, str | None]],
    *,
    concurrency: int,
    call_timeout: float | None,
) -> Iterator[dict[str, RayModel]]:
    """A `RayModel` per provider, each served by a `ModelHost` started here (from its factory
    and the endpoint it calls) and stopped on exit (`_stopped`). `concurrency`: calls a host
    serves at once (the driver's limits never let more be in flight). A dead host is
    restarted."""
    actor = ray.remote(ModelHost).options(
        num_cpus=0, max_concurrency=max(1, concurrency), max_restarts=-1, max_task_retries=0
    )
    hosts: dict[str, Any] = {}
    try:
        for provider, (factory, base_url) in factories.items():
            hosts[provider] = (actor.remote(factory, call_timeout), base_url)
        yield {
            provider: RayModel(host, provider, base_url)
            for provider, (host, base_url) in hosts.items()
        }
    finally:
        _stopped([host for host, _ in hosts.values()])


def _stopped(hosts: Sequence[Any]) -> None:
    """Close every host (its loop ended, its model's connections closed), waiting at most
    `CLOSE_PATIENCE_S` for them all, then end their actors. A host whose `close` failed or did
    not answer in time (a call blocking its loop, a worker that died) is ended all the same:
    its process goes, and its connections with it."""
    if not hosts:
        return
    closing = [host.close.remote() for host in hosts]
    try:
        ray.wait(closing, num_returns=len(closing), timeout=CLOSE_PATIENCE_S)
    finally:
        for host in hosts:
            ray.kill(host, no_restart=True)

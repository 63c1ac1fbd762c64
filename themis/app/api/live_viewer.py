"""`live_viewer`: the viewer of `themis view`, served from the process that runs
(`themis run --view`), so a run can be watched while it proceeds.

A DuckDB file admits one process, so another process cannot read a store while a run holds it
(ADR 0007). The process holding it can: `live_viewer` opens the store read-write for the runs
the caller executes on `viewer.store`, and serves the viewer from a reader of it (a connection
of its own: each request sees every committed batch, writes nothing and never waits for the
writer's lock). Running runs' counts come from the live progress they publish (`/api/live`,
which the pages poll). The viewer writes nothing: a running run's trials and cases show by
places the viewer plans for itself in memory (its execution keeps them in the store when it
ends; ADR 0044).
The URL is written beside the store (`ViewerNotice`), so `themis view` on the held store points
to it.

`release()` closes the store (another process may then open it) and keeps serving, each
request opening the file read-only as `themis view` does, while it prepares the finished runs
in the background as `themis view` does at start (`preparing`); `wait()` serves until Ctrl-C.
Leaving the `with` block stops the server and closes whatever is still open.

Given a store already open (an `Orchestrator`'s `store`), the viewer reads it the same way and
leaves it to its owner: `release()` then only stops reading through it (call it once the owner
has closed it).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from themis.app.api.serving import LOOPBACK, ServerThread, bound_socket, url_of
from themis.app.api.viewer import Preparation, start_warming, viewer_app
from themis.app.execution.running import RunningExecution, watching
from themis.app.wiring import reader_of, store_and_reader, viewer_notice
from themis.core.errors import ConfigError, ThemisError
from themis.ports.store import StorePort
from themis.threads import SignalSafeThread

__all__ = ["LiveViewer", "live_viewer"]


class _Switch:
    """An ASGI app that passes every request to `app`. `swap` replaces it: requests already
    passed on are answered first, however long they take (they may be inside DuckDB, reading
    the store about to close: closing it under them aborts the process), and requests arriving
    meanwhile wait for the new app."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._busy = 0
        self._paused = False
        self._idle = threading.Condition()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while True:
            with self._idle:
                if not self._paused:
                    self._busy += 1
                    app = self._app
                    break
            await asyncio.sleep(0.01)
        try:
            await app(scope, receive, send)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    @property
    def app(self) -> Any:
        return self._app

    def swap(self, app: Any, meanwhile: Callable[[], None]) -> None:
        """Once no request is in flight, run `meanwhile`, then pass every request to `app`."""
        with self._idle:
            self._paused = True
            self._idle.wait_for(lambda: self._busy == 0)
        try:
            meanwhile()
        finally:
            with self._idle:
                self._app = app
                self._paused = False


class LiveViewer:
    """The viewer a process serves of the store file `path` it holds: run experiments on
    `store` while `url` shows them."""

    def __init__(self, store: str | StorePort, sock: socket.socket) -> None:
        self._url = url_of(sock)
        self._lock = threading.Lock()
        self._store: StorePort | None
        self._owned = isinstance(store, str)
        if isinstance(store, str):
            self._path = store
            self._store, self._reader = store_and_reader(store)
        else:
            self._path, self._reader = reader_of(store)
            self._store = store
        self._switch = _Switch(viewer_app(self._reader, written=self._store))
        self._server = ServerThread(self._switch, sock)
        self._preparing: Preparation | None = None
        # Each run that starts executing on the store is prepared in a thread (ADR 0068).
        self._running: list[SignalSafeThread] = []
        self._watch = contextlib.ExitStack()
        self._watch.enter_context(watching(self._store, self._prepare_running))

    @property
    def url(self) -> str:
        return self._url

    @property
    def path(self) -> str:
        """The store file it serves."""
        return self._path

    @property
    def store(self) -> StorePort:
        """The store, open read-write: pass it as `store=` to `Experiment.run` and the rest."""
        if self._store is None:
            raise ConfigError(f"{self._path}: the live viewer has released this store")
        return self._store

    @property
    def app(self) -> Any:
        """The viewer application now answering (another one once the store is released)."""
        return self._switch.app

    @property
    def preparing(self) -> Preparation | None:
        """The thread preparing the finished runs once the store is released (`None` before)."""
        return self._preparing

    def start(self) -> None:
        self._server.start()

    def _prepare_running(self, execution: RunningExecution) -> None:
        """In the thread of an execution starting on the store: prepare its run's pages in a
        thread of its own (`ViewerCache.prepare_running`)."""
        cache = self._switch.app.state.cache

        def prepare() -> None:
            with contextlib.suppress(ThemisError):  # its pages will say why
                cache.prepare_running(execution)

        thread = SignalSafeThread(prepare, name="themis-view-running")
        with self._lock:
            self._running = [held for held in self._running if held.is_alive()]
            self._running.append(thread)
        thread.start()

    def _stop_preparing_running(self) -> None:
        """Stop watching the store and wait for the runs being prepared (a thread may be
        inside DuckDB, reading the store about to close)."""
        self._watch.close()
        with self._lock:
            threads, self._running = self._running, []
        for thread in threads:
            thread.join_through_interrupt()

    def release(self) -> None:
        """Close the store (other processes may open it again; a store given open is left to
        its owner); the viewer keeps serving, opening the file read-only for each request, and
        prepares every run in the background (`preparing`), as `themis view` does at start."""
        self._release(prepare=True)

    def _release(self, *, prepare: bool) -> None:
        self._stop_preparing_running()
        with self._lock:
            if self._store is None:
                return
            store, reader = self._store, self._reader

            served = self._switch.app

            def close() -> None:
                served.state.cache.browser.close()
                reader.close()
                if self._owned:
                    store.close()

            app = viewer_app(self._path)
            if prepare:  # what pages of the runs followed so far kept: prepared already
                served.state.cache.hand_over(app.state.cache)
            self._switch.swap(app, close)
            self._store = None
            if prepare:
                self._preparing = start_warming(app)

    def wait(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until Ctrl-C (or SIGTERM, handled as Ctrl-C meanwhile); `ready` is called
        once both are handled so (e.g. to tell the user how to stop)."""
        previous = signal.getsignal(signal.SIGTERM)
        handles = threading.current_thread() is threading.main_thread()
        if handles:
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            if ready is not None:
                ready()
            while self._server.alive:
                self._server.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            if handles:
                signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        """Stop serving, end the preparation (after the step in hand) and close what is still
        open: no thread is left inside DuckDB when the process exits."""
        self._server.stop()
        if self._preparing is not None:
            self._preparing.stop()
        with self._lock:
            released = self._store is None
        if released:
            self._switch.app.state.cache.browser.close()
        else:
            self._release(prepare=False)


def _interrupt(number: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def live_viewer(
    store: str | Path | StorePort = "themis.duckdb", *, host: str = LOOPBACK, port: int = 0
) -> Iterator[LiveViewer]:
    """Open the DuckDB store file `store` (created if missing; or take the open DuckDB store
    `store`) and serve the viewer of it on `host:port` (port 0: any free one) while the block
    runs; see the module docstring."""
    if isinstance(store, str | Path):
        store = str(store)
        if store in ("memory", ":memory:"):
            raise ConfigError(
                "--view: the live viewer reads a DuckDB store file; give --store FILE"
            )
    sock = bound_socket(host, port)
    try:
        viewer = LiveViewer(store, sock)
        notice = viewer_notice(viewer.path)
        try:
            viewer.start()
            notice.announce(viewer.url)
            yield viewer
        finally:
            notice.withdraw()
            viewer.close()
    finally:
        sock.close()

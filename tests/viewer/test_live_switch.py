"""The live viewer's hand-over (`_Switch.swap`): the store is closed only once no request is
reading it, however long a request takes. Closing it under a query in DuckDB aborts the
process; an earlier hand-over gave up waiting after 30 s and closed it anyway."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from themis.app.api.live_viewer import _Switch


class _Impatient(threading.Condition):
    """A condition on which every deadline has passed already: a wait that would give up
    after some time gives up at once, so a request outliving it needs no real minutes."""

    def wait_for(self, predicate: Any, timeout: float | None = None) -> Any:
        return super().wait_for(predicate, None if timeout is None else 0.0)


def _request(switch: _Switch, answered: list[str]) -> None:
    async def send(message: Any) -> None:
        answered.append(message["body"])

    async def receive() -> Any:
        return {"type": "http.request"}

    asyncio.run(switch({"type": "http"}, receive, send))


def _app(name: str, release: threading.Event, entered: threading.Event) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        while not release.is_set():  # a long query on the store
            await asyncio.sleep(0.01)
        await send({"body": name})

    return app


def test_the_store_is_closed_only_after_the_request_reading_it_is_answered() -> None:
    release, entered, released = threading.Event(), threading.Event(), threading.Event()
    released.set()
    switch = _Switch(_app("old", release, entered))
    switch._idle = _Impatient()
    happened: list[str] = []
    reading = threading.Thread(target=_request, args=(switch, happened), daemon=True)
    swapping = threading.Thread(
        target=switch.swap,
        args=(_app("new", released, threading.Event()), lambda: happened.append("closed")),
        daemon=True,
    )
    try:
        reading.start()
        assert entered.wait(10)
        swapping.start()
        time.sleep(0.3)
        assert happened == []  # the request still reads the store: it stays open
    finally:
        release.set()
        reading.join(10)
        swapping.join(10)
    assert happened == ["old", "closed"]

    later = threading.Thread(target=_request, args=(switch, happened), daemon=True)
    later.start()  # a thread of its own, as the server's are: no event loop left by other tests
    later.join(10)  # later requests reach the new app
    assert happened == ["old", "closed", "new"]

"""The writer encodes a run's events in the trio thread while its loop is idle, and leaves them to
the worker thread when it is not (ADR 0125): what is stored is the same either way."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from tests.app.test_writer_end import logged_run, new_writer
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution import writer as writer_module
from themis.app.execution.writer import IDLE_PIECE, _IdleWork
from themis.core.events import Event, GenerationCompleted
from themis.core.state import project
from themis.core.trial_columns import EventTexts


def generations(count: int) -> list[Event]:
    return [
        GenerationCompleted(at=1_700_000_000.0 + i, trial_key=f"trial-{i}", text=f"answer {i}")
        for i in range(count)
    ]


class EncodingStore(DuckDBStore):
    """Records the thread each `event_texts` call ran in, and how many events it encoded."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.encoded: list[tuple[str, int]] = []

    def event_texts(self, events: Sequence[Event]) -> EventTexts:
        self.encoded.append((threading.current_thread().name, len(events)))
        return super().event_texts(events)


async def spin(until: trio.Event) -> None:
    """Keeps the loop busy (never idle) until `until` is set."""
    while not until.is_set():
        await trio.lowlevel.checkpoint()


def test_an_idle_loop_encodes_the_events_in_pieces_in_its_own_thread() -> None:
    store = EncodingStore(":memory:")
    encoder = _IdleWork(store)
    events = generations(2 * IDLE_PIECE + 5)

    pieces = trio.run(encoder.encode, events)

    assert pieces is not None
    assert [len(piece.payloads) for piece in pieces] == [IDLE_PIECE, IDLE_PIECE, 5]
    assert {thread for thread, _ in store.encoded} == {threading.current_thread().name}
    starts = range(0, len(events), IDLE_PIECE)
    assert pieces == [store.event_texts(events[i : i + IDLE_PIECE]) for i in starts]


def test_a_busy_loop_leaves_the_batch_to_the_worker_thread_and_backs_off() -> None:
    store = EncodingStore(":memory:")
    encoder = _IdleWork(store)
    events = generations(10)

    async def main() -> list[list[EventTexts] | None]:
        done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(spin, done)
            found = [await encoder.encode(events) for _ in range(4)]
            done.set()
        return found

    # The first batch waits in vain and leaves its events to the thread; so does the second,
    # without waiting; the third waits in vain again, and the next two do not wait.
    assert trio.run(main) == [[], [], [], []]
    assert store.encoded == []
    assert encoder._skip == 1  # the fourth skipped the first of the two the third's miss left
    assert trio.run(encoder.encode, events) == []  # skipped: no wait, even on an idle loop
    pieces = trio.run(encoder.encode, events)  # tried again, and idle: encoded here
    assert pieces is not None
    assert len(pieces) == 1
    assert encoder._backoff == 1


def test_a_fold_waits_for_an_idle_moment_and_not_while_backing_off() -> None:
    work = _IdleWork(MemoryStore())

    async def busy_then_idle() -> tuple[bool, bool, bool]:
        done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(spin, done)
            missed = await work.moment()  # never idle: waits `IDLE_WAIT` in vain
            backing_off = await work.moment()  # does not wait at all
            done.set()
        work._skip = 0
        return missed, backing_off, await work.moment()

    assert trio.run(busy_then_idle) == (False, False, True)


def test_a_store_that_keeps_events_is_given_them_and_not_asked_again() -> None:
    asked: list[int] = []

    class Keeping(MemoryStore):
        def event_texts(self, events: Sequence[Event]) -> None:
            asked.append(len(events))

    encoder = _IdleWork(Keeping())

    assert trio.run(encoder.encode, generations(3)) is None
    assert trio.run(encoder.encode, generations(3)) is None
    assert asked == [3]


def test_the_log_is_the_same_whether_the_loop_or_the_thread_encoded_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, events, _ = logged_run()
    logs, threads = [], []
    for wait in (writer_module.IDLE_WAIT, 0.0):  # encoded at idle; then never at idle
        monkeypatch.setattr(writer_module, "IDLE_WAIT", wait)
        store = EncodingStore(str(tmp_path / f"wait-{wait}.duckdb"))
        try:
            writer = new_writer(store, run_id)

            async def send_all(writer: writer_module.EventWriter = writer) -> None:
                send, receive = trio.open_memory_channel[list[Event]](len(events))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(writer.run, receive)
                    async with send:
                        for event in events:
                            await send.send([event])

            trio.run(send_all)
            assert writer.state() == project(events)
            logs.append(store.read(run_id))
            threads.append({thread for thread, _ in store.encoded})
        finally:
            store.close()
    assert logs[0] == logs[1] == list(enumerate(events, 1))
    main = threading.current_thread().name
    assert threads[0] == {main}
    assert main not in threads[1]

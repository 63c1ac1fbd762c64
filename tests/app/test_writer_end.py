"""The writer at the end of an execution: once every sender is closed, what the channel still
holds goes out in one append, every event kept in the log's order; a kill during that append
leaves the log as the earlier appends left it, and a resume completes the run (ADR 0060)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import trio

from tests.app.doubles import (
    CountingModel,
    assert_consistent_prefix,
    events_of,
    make_spec,
    run_virtual,
)
from tests.interrupts import killed_script
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.writer import EventWriter
from themis.core.events import Event, GenerationCompleted
from themis.core.planner import compile_run
from themis.core.runtime import RuntimeConfig
from themis.core.state import RunState, project
from themis.ports.store import StorePort

BATCH = 3
TRIALS = 12


class Hold:
    """Holds a store's first append (in the writer's thread) until `release`, telling `on_first`
    when it starts; records each append's size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.on_first = trio.Event()

    def before_append(self, events: Sequence[object]) -> None:
        if not self.sizes:
            trio.from_thread.run_sync(self.on_first.set)
            assert self.release.wait(timeout=10), "the test never released the first append"
        self.sizes.append(len(events))


class HeldMemoryStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.hold = Hold()

    def append(self, run_id: str, first_seq: int, events: Sequence[Event]) -> None:
        self.hold.before_append(events)
        super().append(run_id, first_seq, events)


def logged_run() -> tuple[str, list[Event], MemoryStore]:
    """A finished run's events, as a scripted model and an in-memory store logged them."""
    compiled = compile_run(make_spec(TRIALS))
    memory = MemoryStore()
    run_virtual(compiled, CountingModel(), memory)
    return compiled.run_id, events_of(memory, compiled.run_id), memory


async def write_behind(hold: Hold, writer: EventWriter, events: Sequence[Event]) -> None:
    """Send `events` one a send; the rest only once the writer's first append is in its thread,
    and that append finishes only after the senders closed: the writer is then behind by all
    the rest, as at the end of a run whose trials outpaced it."""
    send, receive = trio.open_memory_channel[list[Event]](len(events))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, receive)
        async with send:
            for event in events[:BATCH]:
                send.send_nowait([event])
            await hold.on_first.wait()
            for event in events[BATCH:]:
                send.send_nowait([event])
        hold.release.set()


def new_writer(store: StorePort, run_id: str) -> EventWriter:
    runtime = RuntimeConfig(store_batch_size=BATCH, store_flush_interval=0.0)
    return EventWriter(
        store, run_id, next_seq=1, state=RunState(), runtime=runtime, clock=FakeClock()
    )


def test_what_waits_when_the_senders_close_is_appended_at_once_in_order() -> None:
    run_id, events, _ = logged_run()
    store = HeldMemoryStore()
    writer = new_writer(store, run_id)

    trio.run(write_behind, store.hold, writer, events)

    # One full batch, then the whole backlog in one append (batch after batch before).
    assert store.hold.sizes == [BATCH, len(events) - BATCH]
    assert events_of(store, run_id) == events
    assert writer.state() == project(events)
    assert writer.next_seq == len(events) + 1
    assert writer.written == len(events)


# Run in a child process: the writer appends a finished run's events to a DuckDB file, behind
# as above, and the process is killed (SIGKILL) inside the transaction of its second append,
# after the rows are inserted and before they are committed.
KILLED_IN_THE_FINAL_APPEND = """
import os, signal, sys
import trio
from tests.app.test_writer_end import Hold, logged_run, new_writer, write_behind
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_log import INSERT_BATCHES, text_rows

class Killed(DuckDBStore):
    hold = Hold()

    def append(self, run_id, first_seq, events):
        self.append_texts(run_id, first_seq, self.event_texts(events))

    def append_texts(self, run_id, first_seq, texts):  # the writer's (ADR 0125)
        if self.hold.sizes:  # the backlog: inserted, then killed before the commit
            with self._transaction() as con:
                con.execute(INSERT_BATCHES, text_rows(run_id, first_seq, texts))
                os.kill(os.getpid(), signal.SIGKILL)
        self.hold.before_append(texts.payloads)
        super().append_texts(run_id, first_seq, texts)

run_id, events, memory = logged_run()
store = Killed(sys.argv[1])
store.save_snapshot(memory.load_snapshot(run_id))
trio.run(write_behind, store.hold, new_writer(store, run_id), events)
"""


def test_a_kill_during_the_final_append_keeps_what_was_committed_and_a_resume_completes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "killed.duckdb"
    killed_script(KILLED_IN_THE_FINAL_APPEND, str(path))
    compiled = compile_run(make_spec(TRIALS))
    _, events, _ = logged_run()

    store = DuckDBStore(path)
    try:
        kept = events_of(store, compiled.run_id)
        assert kept == events[:BATCH]  # the first append, committed; nothing of the second
        assert_consistent_prefix(store, compiled.run_id)
        model = CountingModel()
        resumed = run_virtual(compiled, model, store)
        generated = {e.trial_key for e in kept if isinstance(e, GenerationCompleted)}
        assert model.calls == TRIALS - len(generated)
        assert resumed.report == run_virtual(compiled, CountingModel(), MemoryStore()).report
        assert_consistent_prefix(store, compiled.run_id)
    finally:
        store.close()

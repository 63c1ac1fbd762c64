"""A writer behind the trials takes what already waits with a full batch, up to
`BACKLOG_BATCHES` batches' events an append: fewer, larger appends, each event logged once and
in order (ADR 0088)."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from tests.app.doubles import events_of
from tests.app.test_writer_end import BATCH, HeldMemoryStore, Hold, logged_run, new_writer
from themis.app.execution.writer import BACKLOG_BATCHES, EventWriter
from themis.core.events import Event
from themis.core.state import project


async def write_while_behind(hold: Hold, writer: EventWriter, events: Sequence[Event]) -> None:
    """Send `events` one a send, the rest while the writer's first append is held in its
    thread, and close the senders only once every event is written: the writer is behind by
    all the rest while the trials are still sending."""
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
            with trio.fail_after(10):
                while writer.written < len(events):
                    await trio.sleep(0.001)


def test_a_writer_behind_appends_what_waits_up_to_backlog_batches_at_once() -> None:
    run_id, events, _ = logged_run()
    assert len(events) - BATCH > 2 * BACKLOG_BATCHES * BATCH  # a backlog of several appends
    store = HeldMemoryStore()
    writer = new_writer(store, run_id)

    trio.run(write_while_behind, store.hold, writer, events)

    sizes = store.hold.sizes
    # Batches of `BATCH` events each before; now a full batch takes the waiting events with it.
    assert sizes[:3] == [BATCH, BACKLOG_BATCHES * BATCH, BACKLOG_BATCHES * BATCH]
    assert max(sizes) == BACKLOG_BATCHES * BATCH
    assert sum(sizes) == len(events)
    assert events_of(store, run_id) == events
    assert writer.state() == project(events)
    assert writer.next_seq == len(events) + 1

"""The single writer: the only task that appends to the event log.

It group-commits: a batch is written when it holds `store_batch_size` events or when
`store_flush_interval` seconds have passed since its first event, whichever comes first, and it
takes with it what already waits in the channel, up to `BACKLOG_BATCHES` times that many events:
a writer behind the trials (a fast run's) appends fewer, larger batches, each append's fixed
costs (DuckDB's statements and commit, the hand-off to its thread) paid fewer times, and a
writer that keeps up appends as before (ADR 0088). Appends (encoding included) run in a worker
thread, and the trials keep sending meanwhile: the channel holds `BUFFERED_BATCHES *
store_batch_size` sends (a trial's events each), so a trial waits for the writer only when it is
that far behind, not whenever an append is in flight (five batches' sends: with the backlog a
batch takes, what is sent and not yet appended stays under the eight the channel held before). A
failed append is retried `store_retry_attempts` times; when the writer is cancelled, its final
flush is shielded. Once every sender is closed (the execution's last event is sent), what the
channel still holds is appended together with the batch being gathered, in one transaction: at
the end of a run whose trials outpaced it, the writer is up to a whole channel behind, and
appending that backlog batch after batch cost a commit each (ADR 0060). A kill loses what was
not appended yet (more of it than with a short channel; the backlog at the end whole or not at
all); those trials run again on resume.

A run's events are encoded for the store (`EventLog.event_texts`) in the trio thread, a piece
of `IDLE_PIECE` events at a time, whenever its loop has nothing else to run, and appended as
texts (`append_texts`) in the worker thread: encoded there, they held the GIL while the trials
had work (an HTTP run's answers waited for them), where the trio thread's idle moments between
waves of answers were free. A batch's fold waits for such a moment too. A wait that finds none
within `IDLE_WAIT` leaves the rest of its batch to be encoded in the worker thread as before,
and the next batches do not wait for a while (`_IdleWork`): a loop that is never idle (an
in-process model's) waits little (ADR 0125). A store that keeps events as they are
(`event_texts` is `None`) gets them as they are.

A derived replay's columnar path (`themis.app.execution.derived_batch`) sends a chunk of
trials as one item, `TrialColumns`: the writer ends a batch at it wherever it comes (it is a
batch's worth of events already: gathering chunks for a flush interval held 8-18 of them,
ADR 0116), and appends it alone (`append_texts`, one transaction), folding its columns
(`Projection.put_trial_columns`) or, if the fold refuses them, its events.

The writer also saves projection checkpoints, the state it has folded so far, so that reopening
an interrupted run folds only the events after the last one. Saving one costs O(state), so the
gap between two grows with the log: at least `checkpoint_interval` events (0: no periodic
checkpoints) and at least `CHECKPOINT_GROWTH` times as many as the previous one covered, which
keeps the total cost linear in the run's events (a fixed gap would make it quadratic: ADR 0006):
together they cost at most 1.5 times one checkpoint of the whole log (2 times when each only
covered as many again), and a kill leaves at most two thirds of the log (one half) to fold again
on reopen (ADR 0056). A checkpoint is a cache:
failing to save one never fails the run. The checkpoint of a finished run, with its report, is
saved by the use case (`themis.app.usecases.runs`), which has the report.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import trio

# `trio.testing.wait_all_tasks_blocked` itself; `trio.testing` imports pytest when it is there.
from trio._core._generated_run import wait_all_tasks_blocked

from themis.core.checkpoint import Checkpoint
from themis.core.errors import SequenceConflict, StoreError
from themis.core.events import Event
from themis.core.runtime import RuntimeConfig
from themis.core.state import Projection, RunState
from themis.core.trial_columns import EventTexts, TrialColumns, joined_texts
from themis.ports.clock import ClockPort
from themis.ports.store import StorePort

BUFFERED_BATCHES = 5
# A full batch takes what already waits in the channel, up to this many batches' events.
BACKLOG_BATCHES = 3
# Each periodic checkpoint covers at least this many times the events of the previous one.
CHECKPOINT_GROWTH = 2
# A batch's events are encoded this many at a time while the trio loop is idle (~0.6 ms of
# its thread each; a wait for such a moment costs ~13 us), and a piece waits at most
# `IDLE_WAIT` seconds for one: the writer waits, not the trials (the channel holds
# `BUFFERED_BATCHES` batches of sends).
IDLE_PIECE = 128
IDLE_WAIT = 0.05
# After a piece found no idle moment, this many batches at most are encoded in the worker
# thread before the trio thread is tried again (the count doubles with each miss).
IDLE_BACKOFF_LIMIT = 64


# What the writer's channel carries: one trial's events (or a chunk's, or an execution's), or a
# chunk of a derived replay's trials as columns.
Sent = list[Event] | TrialColumns
# A batch being gathered: events and chunks, in log order.
Batch = list[Event | TrialColumns]


def channel_size(runtime: RuntimeConfig) -> int:
    """How many sends (a trial's events each) the writer's channel holds before a send waits."""
    return BUFFERED_BATCHES * runtime.store_batch_size


class EventWriter:
    """Writes one run's events in order from `next_seq`, and folds them as it goes."""

    def __init__(
        self,
        store: StorePort,
        run_id: str,
        *,
        next_seq: int,
        state: RunState,
        runtime: RuntimeConfig,
        clock: ClockPort,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._next_seq = next_seq
        self._projection = Projection(state)
        self._batch_size = runtime.store_batch_size
        self._interval = runtime.store_flush_interval
        self._attempts = runtime.store_retry_attempts
        self._retry_delay = runtime.store_retry_delay
        self._checkpoint_interval = runtime.checkpoint_interval
        self._checkpointed = next_seq - 1  # the seq `state` is folded through
        self._clock = clock
        # What `folded` gives another thread, changed together under `_folding`: the fold,
        # the next seq and the last event written (`None` until this writer writes one).
        self._folding = threading.Lock()
        self._last: Event | None = None
        self.closed = trio.Event()
        self._chunks = 0  # chunks of trials in the batch being gathered
        self.written = 0
        # Told each batch once it is appended (telemetry: `themis.app.execution.telemetry`).
        self.on_written: Callable[[Sequence[Event]], None] | None = None
        # Called in the first append's thread before it, and retried with it: waits for a new
        # run's snapshot to be stored (ADR 0060).
        self.before_first: Callable[[], object] | None = None
        self._idle = _IdleWork(store)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def state(self) -> RunState:
        return self._projection.state()

    def folded(self) -> tuple[RunState, int, Event] | None:
        """From any thread: the state of the log through what this writer has written, the seq
        its next event gets and the last event it wrote, taken together (a viewer in the same
        process follows the run from them instead of folding its log again, ADR 0057);
        `None` before its first append."""
        with self._folding:
            if self._last is None:
                return None
            return self._projection.state(), self._next_seq, self._last

    @property
    def fold(self) -> Projection:
        """The fold of what was written so far, to read (only this writer applies to it)."""
        return self._projection

    async def run(self, receive: trio.MemoryReceiveChannel[Sent]) -> None:
        """Write what `receive` delivers (each item: one trial's events, or a chunk of trials)
        until it closes."""
        batch: Batch = []
        try:
            open_ = True
            while open_:
                try:
                    self._add(batch, await receive.receive())
                except trio.EndOfChannel:
                    break
                open_ = await self._fill(receive, batch)
                if open_ and receive.statistics().open_send_channels == 0:
                    # The trials are done: what the channel still holds ends the execution,
                    # and goes out with this batch as one append, not batch after batch.
                    self._drain(receive, batch)
                    open_ = False
                await self._flush(batch)
                batch = []
                if open_:  # the final state is checkpointed with its report by the use case
                    await self._maybe_checkpoint()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                self._drain(receive, batch)  # before `receive` is closed, or what it holds is lost
                await self._flush(batch)
            raise
        finally:
            receive.close()
            self.closed.set()

    async def _fill(self, receive: trio.MemoryReceiveChannel[Sent], batch: Batch) -> bool:
        """Add to `batch` until it is full or the interval since its first event is over,
        then what already waits, up to `BACKLOG_BATCHES` batches' events; `False` once the
        channel is closed and empty. A chunk of trials ends the batch wherever it comes."""
        if batch and isinstance(batch[-1], TrialColumns):
            return True
        deadline = self._clock.monotonic() + self._interval
        while len(batch) < self._batch_size:
            try:
                if self._add(batch, receive.receive_nowait()):
                    return True
                continue
            except trio.WouldBlock:
                pass
            except trio.EndOfChannel:
                return False
            wait = deadline - self._clock.monotonic()
            if wait <= 0:
                return True
            with trio.move_on_after(wait):
                try:
                    if self._add(batch, await receive.receive()):
                        return True
                except trio.EndOfChannel:
                    return False
        while len(batch) < BACKLOG_BATCHES * self._batch_size:
            try:
                if self._add(batch, receive.receive_nowait()):
                    return True
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                return False
        return True

    def _add(self, batch: Batch, sent: Sent) -> bool:
        """Add what was sent to `batch`; whether it was a chunk of trials (which ends a
        batch)."""
        if isinstance(sent, TrialColumns):
            batch.append(sent)
            self._chunks += 1
            return True
        batch.extend(sent)
        return False

    def _drain(self, receive: trio.MemoryReceiveChannel[Sent], batch: Batch) -> None:
        while True:
            try:
                self._add(batch, receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return

    async def _flush(self, batch: Batch) -> None:
        """Append and fold `batch`: its events together, each chunk of trials alone."""
        if not self._chunks:  # (a run's: events alone, not looked at one by one)
            await self._flush_part(batch)  # type: ignore[arg-type]  # (no chunk in it)
            return
        self._chunks = 0
        events: list[Event] = []
        for item in batch:
            if isinstance(item, TrialColumns):
                await self._flush_part(events)
                events = []
                await self._flush_part(item)
            else:
                events.append(item)
        await self._flush_part(events)

    async def _flush_part(self, part: Sequence[Event] | TrialColumns) -> None:
        """Append `part` (retried as the runtime says), then fold it."""
        if not isinstance(part, TrialColumns) and not part:
            return
        encoded = None if isinstance(part, TrialColumns) else await self._idle.encode(part)
        attempt = 0
        while True:
            attempt += 1
            try:
                await trio.to_thread.run_sync(self._append, part, encoded)
                break
            except SequenceConflict:
                raise
            except StoreError:
                if attempt >= self._attempts:
                    raise
                await self._clock.sleep(self._retry_delay)
        if not isinstance(part, TrialColumns):
            await self._idle.moment()  # the fold too, where the loop has nothing else to do
        with self._folding:
            last: Event
            if isinstance(part, TrialColumns):
                count, last = 3 * part.count, part.last
                columns = part.generations, part.parses, part.scores
                if not self._projection.put_trial_columns(*columns):
                    self._projection.apply(part.events())
            else:
                count, last = len(part), part[-1]
                self._projection.apply(part)
            self._next_seq += count
            self.written += count
            self._last = last
        if self.on_written is not None:
            self.on_written(part.events() if isinstance(part, TrialColumns) else part)

    def _append(
        self, part: Sequence[Event] | TrialColumns, encoded: list[EventTexts] | None
    ) -> None:
        """In a worker thread: `before_first` once, then the append of `part`; of events, as
        texts when the store makes them, `encoded` (its first events' texts) and the rest's."""
        if self.before_first is not None:
            self.before_first()
            self.before_first = None
        if isinstance(part, TrialColumns):
            self._store.append_texts(self._run_id, self._next_seq, part.texts)
            return
        done = 0 if encoded is None else sum(len(texts.payloads) for texts in encoded)
        if encoded is not None and done < len(part):
            rest = self._store.event_texts(part[done:])
            encoded = None if rest is None else [*encoded, rest]
        if encoded is None:
            self._store.append(self._run_id, self._next_seq, part)
        else:
            self._store.append_texts(self._run_id, self._next_seq, joined_texts(encoded))

    async def _maybe_checkpoint(self) -> None:
        """Save a checkpoint if the gap since the last one is long enough (module docstring)."""
        seq = self._next_seq - 1
        gap = max(self._checkpoint_interval, CHECKPOINT_GROWTH * self._checkpointed)
        if not self._checkpoint_interval or seq - self._checkpointed < gap:
            return
        self._checkpointed = seq
        checkpoint = Checkpoint(seq=seq, state=self._projection.state())
        try:
            await trio.to_thread.run_sync(self._store.save_checkpoint, self._run_id, checkpoint)
        except StoreError:
            return  # a cache: the next interval tries again, and the log is intact


class _IdleWork:
    """The writer's own work in the trio thread, done in its loop's idle moments (module
    docstring, ADR 0125): a batch's encoding for the store, then its fold. A wait that finds
    no such moment within `IDLE_WAIT` has the next batches not wait at all for a while."""

    def __init__(self, store: StorePort) -> None:
        self._store = store
        self._encodes = True  # until the store says it keeps events as they are
        self._skip = 0  # batches left that do not wait
        self._backoff = 1

    async def moment(self) -> bool:
        """Wait until the loop has nothing else to run; `False` if it had none within
        `IDLE_WAIT` (the next `_backoff` batches then do not wait), or while that lasts, or
        once the writer is cancelled. Never cancelled itself: a cancel between a batch's
        append and its fold would have the writer's last flush append it again."""
        if self._skip or trio.current_effective_deadline() == -math.inf:
            return False
        with trio.CancelScope(shield=True), trio.move_on_after(IDLE_WAIT) as waiting:
            await wait_all_tasks_blocked()
        if waiting.cancelled_caught:
            self._skip = self._backoff
            self._backoff = min(2 * self._backoff, IDLE_BACKOFF_LIMIT)
            return False
        return True

    async def encode(self, events: Sequence[Event]) -> list[EventTexts] | None:
        """The texts of `events`' pieces, each encoded in an idle moment, up to the first
        that found none (the rest is the worker thread's); `None` for a store that takes
        events as they are."""
        if not self._encodes:
            return None
        if self._skip:
            self._skip -= 1
            return []
        encoded: list[EventTexts] = []
        for start in range(0, len(events), IDLE_PIECE):
            if not await self.moment():
                return encoded
            texts = self._store.event_texts(events[start : start + IDLE_PIECE])
            if texts is None:
                self._encodes = False
                return None
            encoded.append(texts)
        self._backoff = 1
        return encoded

"""A derived replay's trials as columns: ADR 0115's path, wired (ADR 0117).

A derived replay (`themis replay RUN --config CHANGED`) copies its source's generations and
parses and scores each one again. Trial by trial (`interpreter._dispatch_batch`) each trial
builds three events, which the writer encodes and folds one by one: ~5 s of Python for 100k
trials. Here, `READ_TRIALS` trials at a time, their generations are read as columns
(`GenerationIndex.read_generation_columns`, the last read let go of first), and each chunk of
`store_batch_size` trials is parsed and scored a column at a time (`answered_columns`), its events'
texts written from the columns by the store (`EventLog.derived_texts`), and sent to the writer
as one `TrialColumns`, which it appends as texts and folds as columns; no event is built.

Which trials take it (else the trial-by-trial path, exactly as before): the path is on
(`COLUMNAR`: a test switches it off), the execution is a derived replay (its generations
`located`) that reuses generations, its metrics only compare, it has no reducer and no judges;
and for each read, every trial is to be generated, parsed and scored, its key is not reused
from elsewhere, is once in the read, and is located in the read's one source run; and the
store reads the generations as columns (`None` for a store that does not, a generation with a
retry or logprobs, or an older log). A read that fails a check runs trial by trial.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from itertools import islice

import trio

from themis.app.execution.limiters import deliver
from themis.app.execution.trials import TrialRunner
from themis.app.execution.writer import Sent
from themis.core.answered import answered_columns
from themis.core.generation import GenerationColumns, GenerationPlace, is_truncated
from themis.core.planner import PendingTrial
from themis.core.stages import EXECUTED_STAGES
from themis.core.trial_columns import DerivedTrials, trial_columns

__all__ = [
    "CHUNKS_AHEAD",
    "COLUMNAR",
    "READ_TRIALS",
    "WRITER_POLL_S",
    "columnar",
    "dispatch_columns",
    "keep_up",
    "reads",
]

CHUNKS_AHEAD = 2  # chunks of a batch execution sent and not yet taken by the writer
WRITER_POLL_S = 0.002

# Whether a derived replay's trials may be taken as columns (the tests switch it off to
# compare the two paths' logs).
COLUMNAR = True
# Trials whose generations are read as columns at once: a read of 5,000 holds ~2.8 MiB of
# payload texts and fields (ADR 0116: 10,000 a read held the last one beside the next).
READ_TRIALS = 5_000
# The column of `GenerationColumns.fields` holding the generations' texts, and their finish
# reasons (`duckdb_generations.COLUMNS`, `GenerationCompleted`'s field order).
_TEXT, _FINISH = 2, 3


def columnar(run: TrialRunner) -> bool:
    """Whether the execution `run` runs may take its trials as columns (the module
    docstring's per-execution checks)."""
    spec = run.compiled.spec
    return (
        COLUMNAR
        and run.prefetching
        and bool(run.located)
        and not run.scorer.executes
        and spec.reducer is None
        and not spec.judges
    )


async def dispatch_columns(
    run: TrialRunner,
    work: Iterable[PendingTrial],
    size: int,
    trial_by_trial: Callable[[TrialRunner, Sequence[PendingTrial], int], Awaitable[None]],
) -> None:
    """Run `work` `READ_TRIALS` trials at a time: each read's trials as columns, `size` a
    chunk, or `trial_by_trial` when a check fails. The next read is made (in a worker thread:
    DuckDB's work, beside this thread's parsing and scoring) while a read's chunks are taken;
    only after a read that failed is its fallback run first (it looks its generations up
    from `run.located`, which a read ahead takes its places out of)."""
    batches = reads(work)
    current = next(batches, None)
    async with trio.open_nursery() as nursery:
        reading = _Read.start(nursery, run, current)
        while current is not None:
            found = await reading.result()
            following = next(batches, None)
            if found is None:
                await trial_by_trial(run, current, size)
                reading = _Read.start(nursery, run, following)
            else:
                reading = _Read.start(nursery, run, following)
                source, columns = found
                for start in range(0, len(current), size):
                    stop = min(start + size, len(current))
                    await _chunk(run, source, columns, current, start, stop)
                    await keep_up(run.send)
                del found, columns  # (let go of before the next read is awaited)
            current = following


async def keep_up(send: trio.MemorySendChannel[Sent]) -> None:
    """After a chunk is sent: wait while more than `CHUNKS_AHEAD` wait for the writer (its
    channel counts sends, and a send here is a whole chunk, so what a batch execution holds
    is bounded by its chunk size), then let a cancellation (an interrupt) be seen."""
    while send.statistics().current_buffer_used > CHUNKS_AHEAD:
        await trio.sleep(WRITER_POLL_S)
    await trio.lowlevel.checkpoint()


class _Read:
    """One read of generations as columns, made in the background: its checks made and its
    places taken out of `run.located` when it starts (a later read, or a fallback, never
    sees them), put back if the store cannot read them so."""

    def __init__(self) -> None:
        self._done = trio.Event()
        self._found: tuple[str, GenerationColumns] | None = None

    @classmethod
    def start(
        cls, nursery: trio.Nursery, run: TrialRunner, ahead: Sequence[PendingTrial] | None
    ) -> _Read:
        read = cls()
        taken = None if ahead is None else _taken(run, ahead)
        if taken is None:
            read._done.set()
        else:
            nursery.start_soon(read._read, run, *taken)
        return read

    async def _read(
        self, run: TrialRunner, source: str, keys: list[str], places: list[GenerationPlace]
    ) -> None:
        try:
            seqs = [place.seq for place in places]
            store = run.store
            columns = await trio.to_thread.run_sync(
                store.read_generation_columns, source, seqs, keys
            )
            if columns is None:  # the places back, for the trials' lookup
                run.located.update(zip(keys, places, strict=True))
            else:
                self._found = source, columns
        finally:
            self._done.set()

    async def result(self) -> tuple[str, GenerationColumns] | None:
        """The read's source run and generations as columns; `None` when a check failed or
        the store did not read them so (their places then back in `run.located`)."""
        await self._done.wait()
        found, self._found = self._found, None
        return found


def _taken(
    run: TrialRunner, ahead: Sequence[PendingTrial]
) -> tuple[str, list[str], list[GenerationPlace]] | None:
    """The read's source run, keys and places, taken out of `run.located`, when every trial
    qualifies (the module docstring's per-read checks); `None`, taking nothing, otherwise."""
    located, reusable = run.located, run.reusable
    keys = [item.plan.trial_key for item in ahead]
    places = [located.get(key) for key in keys]
    first = places[0]
    if first is None or len(set(keys)) != len(keys):
        return None
    source = first.run_id
    for item, place in zip(ahead, places, strict=True):
        if (
            place is None
            or place.run_id != source
            or item.stages != EXECUTED_STAGES
            or item.plan.trial_key in reusable
        ):
            return None
    for key in keys:  # each place let go of once taken, as `TrialRunner._looked_up` does
        del located[key]
    return source, keys, places  # type: ignore[return-value]  # (none is None)


async def _chunk(
    run: TrialRunner,
    source: str,
    columns: GenerationColumns,
    ahead: Sequence[PendingTrial],
    start: int,
    stop: int,
) -> None:
    """Trials `start` to `stop` of a read: parsed, scored, their texts written, counted, sent
    to the writer as one item."""
    plans = [item.plan for item in ahead[start:stop]]
    fields = [column[start:stop] for column in columns.fields]
    metrics = run.scorer.metrics  # (all of them compare: `columnar`)
    answers, errors, scores = answered_columns(
        run.parser,
        fields[_TEXT],
        [plan.choices for plan in plans],
        [plan.expected for plan in plans],
        metrics,
        run.compiled.plugins,
    )
    trials = DerivedTrials(
        at=run.clock.now(),
        source_run=source,
        payloads=columns.payloads[start:stop],
        trial_ids=[plan.trial_id for plan in plans],
        trial_keys=[plan.trial_key for plan in plans],
        answers=answers,
        errors=errors,
        metrics=[metric.name for metric in metrics],
        scores=scores,
        epoch=run.epoch,
    )
    chunk = trial_columns(trials, run.store.derived_texts(trials), fields)
    counts, n = run.counts, len(plans)
    unparsed = answers.count(None)
    counts.generated += n
    counts.truncated += sum(map(is_truncated, fields[_FINISH]))
    counts.parsed += n - unparsed
    counts.unparsed += unparsed
    counts.scored += n
    counts.done += n
    run.generated.learn(chunk)
    await deliver(run.send, chunk)


def reads(work: Iterable[PendingTrial]) -> Iterator[list[PendingTrial]]:
    """`work` `READ_TRIALS` trials at a time."""
    items = iter(work)
    while ahead := list(islice(items, READ_TRIALS)):
        yield ahead

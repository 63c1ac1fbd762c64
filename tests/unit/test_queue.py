"""The queue's pure decisions (`themis.core.queue`): submission order, no run queued twice,
what a worker holding the store takes next, and how an entry ends."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from themis.core.queue import (
    DONE,
    QUEUED,
    RUNNING,
    Ending,
    QueuedRun,
    claimed,
    enqueued,
    finished,
    next_to_take,
    waiting,
)
from themis.core.stages import Stage


def _candidate(run_id: str, at: float = 0.0, stage: Stage = Stage.SCORE) -> QueuedRun:
    return QueuedRun(run_id, f"name-{run_id}", 0, at, stage, trials=4)


def _queue(run_ids: list[str]) -> list[QueuedRun]:
    entries: list[QueuedRun] = []
    for at, run_id in enumerate(run_ids):
        entry, new = enqueued(entries, _candidate(run_id, float(at)))
        if new:
            entries.append(entry)
    return entries


def test_a_new_run_comes_after_every_other() -> None:
    entries = _queue(["a", "b"])
    entry, new = enqueued(entries, _candidate("c", 9.0, Stage.GENERATE))
    assert new
    assert entry == QueuedRun("c", "name-c", 3, 9.0, Stage.GENERATE, trials=4)


def test_a_run_queued_or_running_is_not_queued_twice() -> None:
    entries = _queue(["a", "b"])
    entries[0] = claimed(entries[0], 7, 1.0)
    for run_id, expected in (("a", entries[0]), ("b", entries[1])):
        assert enqueued(entries, _candidate(run_id, 5.0)) == (expected, False)


def test_a_done_run_is_queued_again_last() -> None:
    entries = _queue(["a", "b"])
    entries[0] = finished(claimed(entries[0], 7, 1.0), 2.0, Ending("completed"))
    entry, new = enqueued(entries, _candidate("a", 5.0))
    assert new
    assert entry.position == 3
    assert entry.state == QUEUED


@given(st.lists(st.sampled_from("abcdef"), max_size=20))
def test_the_queue_holds_each_run_once_in_first_submission_order(run_ids: list[str]) -> None:
    entries = _queue(run_ids)
    assert [entry.run_id for entry in entries] == list(dict.fromkeys(run_ids))
    assert [entry.position for entry in entries] == list(range(1, len(entries) + 1))


def test_a_worker_takes_the_earliest_entry_not_done() -> None:
    entries = _queue(["a", "b", "c"])
    assert next_to_take(entries) == entries[0]
    entries[0] = finished(claimed(entries[0], 7, 1.0), 2.0, Ending("completed"))
    assert next_to_take(entries) == entries[1]
    ended = [finished(claimed(entry, 1, 1.0), 2.0, Ending("failed")) for entry in entries]
    assert next_to_take(ended) is None


def test_an_entry_a_stopped_worker_left_running_is_taken_first() -> None:
    entries = _queue(["a", "b"])
    entries[0] = claimed(entries[0], 7, 1.0)  # its worker was killed: it stays running
    again = next_to_take(entries)
    assert again == entries[0]
    assert claimed(again, 8, 3.0).attempts == 2


def test_claiming_and_finishing_record_who_when_and_how() -> None:
    entry = claimed(_queue(["a"])[0], 42, 10.0)
    assert (entry.state, entry.worker, entry.attempts, entry.started_at) == (RUNNING, 42, 1, 10.0)
    ending = Ending("completed", trials_executed=3, model_calls=2)
    done = finished(entry, 12.0, ending)
    assert (done.state, done.finished_at, done.ending) == (DONE, 12.0, ending)
    assert waiting([done]) == []

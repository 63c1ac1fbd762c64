"""`fold_report`: `build_report` at an execution's end, summed over the columns of its fold.

An execution ends holding its fold (`EventColumns` maps, ADR 0055) and the record of its whole
plan (`PlanRecord`). `columnar_report` (ADR 0068) places a fold's rows by dicts of every trial
id and key of the plan (`PlanIndex`): ~0.3 GiB at 1M trials, at the run's end. Here each plan
position finds its row through the fold's own key index instead (`EventColumns.rows_of`, as
`case_table` does): an array of rows per map, no dict of the plan. The facts, and then the
report, are `FactColumns`' (ADR 0083).

It answers where `columnar_report` does (the default rows of a run without rows over samples
or judges) and only for a fold held as columns whose every row belongs to a trial of the plan;
anything else gives `None`, and the caller builds the report trial by trial as before.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from themis.core.breakdown import Breakdown
from themis.core.event_columns import EventColumns
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.report import GENERATION_FIELDS, Report
from themis.core.report_columns import (
    END_PART,
    FactColumns,
    PlanLayout,
    applies,
    distinct_scores,
    row_positions,
)
from themis.core.state import RunState

__all__ = ["fold_report"]


def fold_report(
    compiled: CompiledRun,
    state: RunState,
    record: PlanRecord,
    by: Breakdown | None = None,
    layout: PlanLayout | None = None,
) -> Report | None:
    """`build_report(compiled, state, record, by)`, or `None` where the module docstring says;
    `layout`: `PlanLayout.of(compiled)`, if the caller has it (the case table reads it too)."""
    by = by or Breakdown()
    ids, keys = record.trial_ids, record.trial_keys
    if not applies(compiled, by) or not record.complete:
        return None
    if not len(ids) == len(keys) == compiled.trial_count:
        return None
    facts = _facts(compiled, state, ids, keys)
    if facts is None:
        return None
    return facts.report(compiled, state, by, layout or PlanLayout.of(compiled))


def _row_array(held: Mapping[str, Any], keys: Sequence[str]) -> np.ndarray | None:
    """Each plan position's row in `held` (one of the fold's maps; -1 where it holds nothing
    for that position's key); `None` for a map not held as columns."""
    return held.row_array(keys) if isinstance(held, EventColumns) else None


def _rows(held: Mapping[str, Any], keys: Sequence[str]) -> np.ndarray | None:
    """`_row_array`, when every row of `held` is some position's; else `None` (a row of a
    trial the plan does not hold)."""
    rows = _row_array(held, keys)
    if rows is None:
        return None
    # Every row some position's: marked in one pass (`np.unique` hashed them: ~0.1 s at 100k).
    every = np.zeros(len(held), dtype=bool)
    for start in range(0, len(rows), END_PART):
        part = rows[start : start + END_PART]
        every[part[part >= 0]] = True
    return rows if every.all() else None


def _facts(
    compiled: CompiledRun, state: RunState, ids: Sequence[str], keys: Sequence[str]
) -> FactColumns | None:
    """The facts of every plan position, each map of the fold read `END_PART` rows at a time
    into arrays of its rows (no list of a whole column, nor of a `str` per answer: ADR 0103)."""
    metrics = [metric.name for metric in compiled.spec.metrics]
    facts = FactColumns(len(ids), len(metrics))
    # The generations first: their join stands beside none of the score values written (the
    # facts' arrays are zeros not yet touched: not resident).
    generations = _rows(state.generations, keys)
    if generations is None:
        return None
    _generations(facts, state.generations, generations)
    del generations
    scores, parses = state.scores, state.parses
    if _same_index(scores, parses):  # scores read their parses' index (ADR 0076)
        joined = _row_array(max(scores, parses, key=len), ids)  # one join for both
        scored, parsed = _positions(joined, len(scores)), _positions(joined, len(parses))
        del joined
    else:
        scored = _positions(_row_array(scores, ids), len(scores))
        parsed = _positions(_row_array(parses, ids), len(parses))
    if scored is None or parsed is None:
        return None
    _score_values(facts, scores, scored, metrics)
    for start in range(0, len(parsed), END_PART):
        answers = parses.column("answer", start, start + END_PART)  # type: ignore[attr-defined]
        unparsed = map(operator.is_, answers, itertools.repeat(None))
        facts.unparsed[parsed[start : start + len(answers)]] = np.fromiter(
            unparsed, dtype=bool, count=len(answers)
        )
    del scored, parsed
    return facts if _failures(facts, state, keys) else None


def _same_index(first: Any, second: Any) -> bool:
    """Whether two of the fold's maps read their keys through one key index."""
    return isinstance(first, EventColumns) and first.shares_index(second)


def _positions(rows: np.ndarray | None, count: int) -> np.ndarray | None:
    """`row_positions(rows, count)`, when every row is some position's; else (or without
    `rows`) `None`."""
    if rows is None:
        return None
    found = row_positions(rows, count)
    return found if bool((found >= 0).all()) else None


def _score_values(
    facts: FactColumns, held: Any, positions: np.ndarray, metrics: Sequence[str]
) -> None:
    """Each scored position's values, its map's rows read `END_PART` at a time."""
    for start in range(0, len(positions), END_PART):
        maps = held.column("scores", start, start + END_PART, as_items=True)
        at = positions[start : start + len(maps)]
        coded, values, _ = distinct_scores(maps, metrics)
        facts.scored[at] = True
        facts.values[:, at] = values[coded].T


def _generations(facts: FactColumns, held: Any, rows: np.ndarray) -> None:
    """`FactColumns._generations`, each position reading its row of the fold's generations
    (their fields mapped `END_PART` rows at a time: `FactColumns.generation_rows`)."""
    at = rows >= 0
    facts.generated = at
    if not at.any():
        return
    found = facts.generation_rows(
        len(held),
        (
            [held.column(name, start, start + END_PART) for name in GENERATION_FIELDS]
            for start in range(0, len(held), END_PART)
        ),
    )
    for start in range(0, len(rows), END_PART):
        part = rows[start : start + END_PART]
        (placed,) = np.nonzero(part >= 0)
        facts.place_rows(placed + start, part[placed], found)


def _failures(facts: FactColumns, state: RunState, keys: Sequence[str]) -> bool:
    """`FactColumns._failures`, each failed key's positions found by a walk of the plan's
    keys; `False` when a failed key is no trial's of the plan."""
    failures = state.generation_failures
    if not failures:
        return True
    failing = np.fromiter(map(failures.__contains__, keys), dtype=bool, count=len(keys))
    (at,) = np.nonzero(failing)
    placed = [keys[position] for position in at.tolist()]
    if len(set(placed)) != len(failures):
        return False
    again = {key: failures[key].attempts > 1 or bool(failures[key].retries) for key in failures}
    alone = np.fromiter((again[key] for key in placed), dtype=bool, count=len(placed))
    facts.failure[at] = True
    # With a generation, any failure of its key counts as a retry; without one, its own.
    facts.retried[at] = np.where(facts.generated[at], True, alone)
    return True

"""`CaseTable`: each case's values of a run's default rows, worked out once when the run ends
and kept with its final checkpoint, so that a viewer's first comparison reads them back as
arrays instead of aggregating the log's score rows (ADR 0072).

Per row group (dataset, model, prompt; every group the plan has, in sorted order) and per case
with a settled trial (a scored one, or one whose generation failed: `case_scores`' rules), in
code point order of case id:

- `settled`: how many of its trials are settled;
- `means[i]`: its mean on metric i as `themis compare` takes it (`fsum` of its values over
  their count, a failed trial 0, a score without the metric 0): `CaseMeans`;
- `present_sums[i]`, `present_counts[i]`: the sum and count of its values that are not missing
  (a failed trial 0, a score without the metric left out): what the viewer's disagreements
  average, pooled over the groups a side spans.

Only for a run whose rows are plain (no rows over samples, no judges) whose whole plan the
record holds; otherwise `None`, and a reader reads the log as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from attrs import frozen

from themis.core.case_values import CaseMeans
from themis.core.event_columns import EventColumns
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.report_sampling import is_sampled
from themis.core.state import RunState

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from themis.core.comparison import GroupScores
    from themis.core.report_columns import PlanLayout

__all__ = ["CASE_TABLE_TRIALS", "CaseTable", "case_table"]

Group = tuple[str, str, str]
# The runs whose end keeps a case table: those of at least this many trials. A smaller run's
# comparison reads its log fast enough (~3 us a trial), and the table's numpy import (~0.1 s of
# CPU, which a run otherwise never pays) would cost more than it saves.
CASE_TABLE_TRIALS: Final = 20_000


@frozen(eq=False)
class CaseTable:
    """Each case's values of every row group and metric (see the module docstring): the rows
    of group `groups[g]` are `bounds[g]:bounds[g + 1]` of every column."""

    metrics: tuple[str, ...]
    groups: tuple[Group, ...]
    bounds: npt.NDArray[np.int64]
    # A table built at a run's end may hold its ASCII ids as numpy `bytes`, its counts of one
    # trial a case as `bool` and its settled counts as a broadcast 1 (ADR 0103: ~40 MiB less
    # at 1M rows through the final checkpoint); its encoding and `scores` read either.
    cases: npt.NDArray[np.str_ | np.bytes_]
    settled: npt.NDArray[np.int64]
    means: npt.NDArray[np.float64]  # (metrics, rows)
    present_sums: npt.NDArray[np.float64]  # (metrics, rows)
    present_counts: npt.NDArray[np.int64 | np.bool_]  # (metrics, rows)

    def scores(self) -> GroupScores:
        """`CaseMeans` of every group and metric: what `case_scores` gives the run's plain
        rows, as a comparison pairs them."""
        from themis.core.report_columns import case_texts

        found: dict[Group, dict[str, CaseMeans]] = {}
        for number, group in enumerate(self.groups):
            start, stop = int(self.bounds[number]), int(self.bounds[number + 1])
            cases = case_texts(self.cases[start:stop])
            found[group] = {
                metric: CaseMeans(cases, self.means[row, start:stop], self.settled[start:stop])
                for row, metric in enumerate(self.metrics)
            }
        return found


def case_table(
    compiled: CompiledRun, state: RunState, record: PlanRecord, layout: PlanLayout | None = None
) -> CaseTable | None:
    """The run's `CaseTable` of `state`, its plan's keys read from `record`; `None` for a run
    with rows over samples or judges, or a record that does not hold the whole plan. `layout`:
    `PlanLayout.of(compiled)`, if the caller has it (the report reads it too).

    Each trial's score is found through the state's own key index (`EventColumns.rows_of`)
    and each distinct score map read once; a failed trial by its key among the few failed
    ones: no index of the whole plan is built (at 1M trials, dicts of every id and key would
    hold ~0.3 GiB at the run's end, beside its final checkpoint)."""
    import numpy as np

    from themis.core.report_columns import PlanLayout, distinct_scores

    spec = compiled.spec
    total = compiled.trial_count
    ids, keys = record.trial_ids, record.trial_keys
    if is_sampled(spec) or spec.judges or len(ids) != total or len(keys) != total:
        return None
    metrics = tuple(metric.name for metric in spec.metrics)
    layout = layout or PlanLayout.of(compiled)
    if layout.distinct_ids and spec.samples == 1 and isinstance(state.scores, EventColumns):
        return _one_a_case(metrics, layout, state, ids, keys)  # each trial its own row
    at, maps = _score_rows(state, ids)
    scored = at >= 0
    failed = _failed(state, keys, scored)
    coded, found, has = distinct_scores(maps, metrics)
    settled = scored | failed
    held = scored[settled]
    if len(found):  # a failed trial's code is any (its row is -1): masked by `held`
        codes = coded[at[settled]]
        values = np.where(held, found[codes].T, 0.0)
        present = (has[codes].T & held) | ~held
    else:  # failed trials alone: each value 0, present
        values = np.zeros((len(metrics), len(held)), dtype=np.float64)
        present = np.ones((len(metrics), len(held)), dtype=bool)
    return _grouped(metrics, layout, settled, values, present)


def _failed(state: RunState, keys: Sequence[str], scored: npt.NDArray[np.bool_]) -> Any:
    """Which trials are settled by their generation's failure (and hold no score)."""
    import numpy as np

    failing = state.failed_keys
    if not failing:
        return np.zeros(len(keys), dtype=bool)
    return np.fromiter(map(failing.__contains__, keys), dtype=bool, count=len(keys)) & ~scored


def _one_a_case(
    metrics: tuple[str, ...],
    layout: PlanLayout,
    state: RunState,
    ids: Sequence[str],
    keys: Sequence[str],
) -> CaseTable:
    """The table of a run whose every row group holds one trial a case (one sample, no case
    id twice in a dataset): each settled trial is a row, its values its means. Read without a
    sort of the whole run's rows nor a list of its score maps: each map's rows read
    `END_PART` at a time into each trial's values, then each group's trials placed in the
    order of their case ids (ADR 0103)."""
    import numpy as np

    from themis.core.report_columns import END_PART, distinct_scores, row_positions

    held = cast("EventColumns[Any]", state.scores)
    total = len(ids)
    values = np.zeros((len(metrics), total), dtype=np.float64)  # a failed trial's: 0, present
    present = np.ones((len(metrics), total), dtype=bool)
    scored = np.zeros(total, dtype=bool)
    positions = row_positions(held.row_array(ids), len(held))
    for start in range(0, len(held), END_PART):
        maps = held.column("scores", start, start + END_PART, as_items=True)
        at = positions[start : start + len(maps)]
        kept = at >= 0  # (a score of a trial the plan does not hold: none of the table's)
        coded, found, has = distinct_scores(maps, metrics)
        at = at[kept]
        scored[at] = True
        values[:, at] = found[coded[kept]].T
        present[:, at] = has[coded[kept]].T
    del positions
    settled = scored | _failed(state, keys, scored)
    del scored
    ordered = sorted(_sortable(group) for group in layout.groups)
    rows = int(np.count_nonzero(settled))
    names = layout.case_ids
    cases = np.empty(rows, dtype=names.dtype)  # (ASCII ids as bytes: `CaseTable.cases`)
    # A row's one value is its mean and, present or not (then 0), its present values' sum:
    # one array for both (~16 MiB less at 1M trials of 2 metrics).
    means = np.empty((len(metrics), rows), dtype=np.float64)
    present_counts = np.empty((len(metrics), rows), dtype=bool)  # one trial: 0 or 1
    bounds = [0]
    by_id: dict[int, npt.NDArray[np.intp]] = {}  # a dataset's cases in id order, by its first
    for number, _ in sorted(enumerate(layout.groups), key=lambda item: _sortable(item[1])):
        (trials,) = np.nonzero(layout.group_of == number)  # one a case, in the dataset's order
        first = int(layout.cluster_of[trials[0]]) if len(trials) else 0
        order = by_id.get(first)
        if order is None:
            order = by_id[first] = np.argsort(names[first : first + len(trials)], kind="stable")
        trials = trials[order]
        trials = trials[settled[trials]]
        for offset in range(0, len(trials), END_PART):  # (no copy of a whole column at once)
            part = trials[offset : offset + END_PART]
            start = bounds[-1] + offset
            stop = start + len(part)
            cases[start:stop] = names[layout.cluster_of[part]]
            for row in range(len(metrics)):
                means[row, start:stop] = values[row, part] + 0.0  # (fsum's: -0.0 is 0.0)
                present_counts[row, start:stop] = present[row, part]
        bounds.append(bounds[-1] + len(trials))
    return CaseTable(
        metrics=metrics,
        groups=tuple(ordered),
        bounds=np.asarray(bounds, dtype=np.int64),
        cases=cases,
        settled=np.broadcast_to(np.int64(1), (rows,)),  # (one trial a row: no array of 1s)
        means=means,
        present_sums=means,
        present_counts=present_counts,
    )


def _score_rows(state: RunState, ids: Sequence[str]) -> tuple[npt.NDArray[np.int64], list[Any]]:
    """Each trial's row among the state's scores (-1 for none) and each row's score map."""
    import numpy as np

    held = state.scores
    if isinstance(held, EventColumns):
        return held.row_array(ids), held.column("scores", as_items=True)
    events = list(held.values())
    index = {event.trial_id: row for row, event in enumerate(events)}
    rows = np.fromiter((index.get(trial, -1) for trial in ids), dtype=np.int64, count=len(ids))
    return rows, [event.scores for event in events]


def _grouped(
    metrics: tuple[str, ...],
    layout: PlanLayout,
    settled: npt.NDArray[np.bool_],
    values: npt.NDArray[np.float64],
    present: npt.NDArray[np.bool_],
) -> CaseTable:
    """The table of the settled trials' `values` and `present` (per metric, per settled
    trial), each placed by `layout`."""
    import numpy as np

    from themis.core.report_columns import case_texts

    group_of, cluster_of = layout.group_of[settled], layout.cluster_of[settled]
    names = layout.case_ids
    # Rows ordered by group (its key's order) then case id (code point order, as numpy sorts).
    ordered = sorted(_sortable(group) for group in layout.groups)
    group_rank = np.asarray([ordered.index(_sortable(g)) for g in layout.groups], dtype=np.int64)
    case_rank = _ranks(names)
    key = group_rank[group_of] * len(names) + case_rank[cluster_of]
    keys, first, row_of, counts = np.unique(
        key, return_index=True, return_inverse=True, return_counts=True
    )
    row_of = row_of.reshape(-1)
    per_group = np.bincount(keys // max(len(names), 1), minlength=len(ordered))
    bounds = np.concatenate([[0], np.cumsum(per_group)]).astype(np.int64)
    rows = len(keys)
    # Each metric's row of the columns filled in place, one at a time: no list of rows beside
    # the columns, no copy of `values` with what is missing set to 0 (ADR 0097).
    means = np.empty((len(values), rows), dtype=np.float64)
    present_sums = np.empty((len(values), rows), dtype=np.float64)
    present_counts = np.empty((len(values), rows), dtype=np.int64)
    for at, (row, shown) in enumerate(zip(values, present, strict=True)):
        means[at] = _means(row, row_of, counts)
        present_sums[at] = np.bincount(row_of, weights=np.where(shown, row, 0.0), minlength=rows)
        present_counts[at] = np.bincount(row_of, weights=shown, minlength=rows)
    return CaseTable(
        metrics=metrics,
        groups=tuple(ordered),
        bounds=bounds,
        cases=case_texts(names[cluster_of[first]]) if rows else np.zeros(0, dtype=np.str_),
        settled=counts.astype(np.int64),
        means=means,
        present_sums=present_sums,
        present_counts=present_counts,
    )


def _sortable(group: tuple[str | None, ...]) -> Group:
    """A default row group's (dataset, model, prompt), none of which is `None`."""
    return (str(group[0]), str(group[1]), str(group[2]))


def _ranks(values: npt.NDArray[np.generic]) -> npt.NDArray[np.int64]:
    """Each value's place among `values` sorted (equal values: distinct places)."""
    import numpy as np

    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(len(values))
    return ranks


def _means(
    values: npt.NDArray[np.float64], row_of: npt.NDArray[np.intp], counts: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Each row's mean of `values` (one per trial, in `row_of`'s rows) as `case_mean` takes it:
    `fsum` of its values over their count. A sum of one or two values is rounded once in any
    order, as is a sum of whole numbers below 2**53; the other rows are summed by `fsum`."""
    import numpy as np

    sums = np.bincount(row_of, weights=values, minlength=len(counts))
    whole = np.bincount(row_of, weights=values != np.round(values), minlength=len(counts)) == 0
    small = np.bincount(row_of, weights=np.abs(values), minlength=len(counts)) < 2.0**53
    inexact = np.flatnonzero((counts > 2) & ~(whole & small))
    if len(inexact):
        held: dict[int, list[float]] = {int(row): [] for row in inexact}
        for row, value in zip(row_of.tolist(), values.tolist(), strict=True):
            found = held.get(row)
            if found is not None:
                found.append(value)
        for row, found in held.items():
            sums[row] = math.fsum(found)
    return sums / np.maximum(counts, 1) + 0.0

"""`columnar_report`: `build_report` of a run's state, computed over numpy columns of its
trials' facts instead of trial by trial (ADR 0068).

A viewer in the process that executes a run (`themis run --view`) reads the execution's own
fold (ADR 0057) and the record of its plan. The facts `trial_facts` reads of each trial come
from the state's maps as whole columns (`EventColumns.column`), placed by the plan's ids and
keys (`PlanIndex`, a key two trials share placed at both), and every count, case value and
served model id is summed by numpy per row group. The result equals `build_report`'s for the
same state (tested after every batch of growing logs: same rows in the same order, same
values). The index must hold the whole plan: a trial not read yet may share its key with one
whose generation is logged, and counts as served (or cut, reused, retried) already.

It covers the report's default rows (dataset × model × prompt) of a run without rows over
samples or judges; anything else gives `None` (the caller builds the report as before). A
case's mean is exact as `case_mean` takes it: its one value, or a sum of 0s and 1s over their
count, or else `math.fsum` of its values.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import numpy as np

from themis.core.breakdown import Breakdown
from themis.core.generation import TRUNCATED_REASONS
from themis.core.planner import CompiledRun, PlanRecord
from themis.core.report import GENERATION_FIELDS, GroupKey, Report, Tally, tallied_report
from themis.core.report_sampling import is_sampled
from themis.core.state import RunState
from themis.core.stats import Estimate, case_mean, estimate_of_means

__all__ = [
    "END_PART",
    "FactColumns",
    "Floats",
    "PlanIndex",
    "PlanLayout",
    "applies",
    "case_texts",
    "columnar_report",
    "distinct_scores",
]


class PlanIndex:
    """The plan position of each trial a `PlanRecord` holds so far, by trial id and by trial
    key (a key two trials share, e.g. two prompts rendering alike, lists both positions);
    `extend` it as the record grows (it reads only what was added)."""

    def __init__(self) -> None:
        self.count = 0
        self.by_id: dict[str, int] = {}
        self.by_key: dict[str, int] = {}
        self.shared: dict[str, list[int]] = {}  # keys of more than one trial: every position
        self._layout: tuple[CompiledRun, PlanLayout] | None = None

    def layout(self, compiled: CompiledRun) -> PlanLayout:
        """Each plan position's row group, case and model in `compiled` (the run this index is
        of), worked out once."""
        held = self._layout
        if held is None or held[0] is not compiled:
            held = self._layout = (compiled, PlanLayout.of(compiled))
        return held[1]

    def extend(self, record: PlanRecord) -> None:
        """Index the trials `record` holds beyond those indexed already."""
        ids, keys = record.trial_ids, record.trial_keys
        start, stop = self.count, min(len(ids), len(keys))  # both lists may still grow
        if stop <= start:
            return
        self.by_id.update(zip(ids[start:stop], range(start, stop), strict=True))
        before = len(self.by_key)
        self.by_key.update(zip(keys[start:stop], range(start, stop), strict=True))
        self.count = stop
        if len(self.by_key) - before != stop - start:  # some key repeats: list its positions
            self._share(keys)

    def _share(self, keys: Sequence[str]) -> None:
        """List the positions of every key indexed more than once (rare: done over again)."""
        positions: dict[str, list[int]] = {}
        for position, key in enumerate(keys[: self.count]):
            positions.setdefault(key, []).append(position)
        self.shared = {key: held for key, held in positions.items() if len(held) > 1}
        for key, held in self.shared.items():
            self.by_key[key] = held[0]

    def positions(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """For each of `keys` (trial keys, in a map's row order), its positions: the rows and
        the positions as two equal-length arrays (a shared key once per trial); `None` when some
        key is not indexed."""
        positions = _looked_up(self.by_key, keys)
        if positions is None:
            return None
        rows = np.arange(len(positions), dtype=np.int64)
        if self.shared:
            extra = [
                (row, position)
                for row, key in enumerate(keys)
                if key in self.shared
                for position in self.shared[key][1:]
            ]
            if extra:
                more = np.asarray(extra, dtype=np.int64)
                rows = np.concatenate([rows, more[:, 0]])
                positions = np.concatenate([positions, more[:, 1]])
        return rows, positions

    def id_positions(self, ids: Sequence[str]) -> np.ndarray | None:
        """The position of each of `ids` (trial ids); `None` when some id is not indexed."""
        return _looked_up(self.by_id, ids)


def _looked_up(index: Mapping[str, int], keys: Sequence[str]) -> np.ndarray | None:
    """`index[key]` of each of `keys` (looked up in C), or `None` when one is missing."""
    try:
        return np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))
    except KeyError:
        return None


def _mapped(values: Sequence[Any], of: Callable[[Any], Any], dtype: Any) -> np.ndarray:
    """`of(value)` of each of `values` (a column: few distinct values), worked out once per
    distinct value."""
    try:
        distinct = {value: of(value) for value in set(values)}
    except TypeError:  # an unhashable value: one by one
        return np.asarray([of(value) for value in values], dtype=dtype)
    if len(distinct) == 1:
        return np.full(len(values), next(iter(distinct.values())), dtype=dtype)
    return np.fromiter(map(distinct.__getitem__, values), dtype=dtype, count=len(values))


def _columns(held: Mapping[str, Any], key: str, *names: str) -> list[list[Any]]:
    """The keys of `held` (a state's map of events) and those fields of each event, as lists
    in the map's order: whole columns of an `EventColumns`, read without building events."""
    column = getattr(held, "column", None)
    if column is not None:
        return [column(key), *(column(name) for name in names)]
    events = list(held.values())
    return [[getattr(event, name) for event in events] for name in (key, *names)]


def _scores(held: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """The trial ids of a state's scores and each one's score map, as held (an `EventColumns`
    gives its items tuples, equal ones shared: not a dict each)."""
    column = getattr(held, "column", None)
    if column is not None:
        return column("trial_id"), column("scores", as_items=True)
    events = list(held.values())
    return [event.trial_id for event in events], [event.scores for event in events]


def distinct_scores(
    maps: Sequence[Any], metrics: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct score map of `maps` (as held: most are one object, `EventColumns`
    interns them) read once: each map's number among them, and per distinct map its value of
    each metric (0 for one it lacks) and whether it has it."""
    held_at = np.fromiter(map(id, maps), dtype=np.int64, count=len(maps))
    _, first, coded = np.unique(held_at, return_index=True, return_inverse=True)
    table = [dict(maps[row]) for row in first.tolist()]
    values = np.asarray(
        [[found.get(metric, 0.0) for metric in metrics] for found in table], dtype=np.float64
    ).reshape(len(table), len(metrics))
    present = np.asarray(
        [[metric in found for metric in metrics] for found in table], dtype=bool
    ).reshape(len(table), len(metrics))
    return coded.reshape(-1), values, present


def row_positions(rows: np.ndarray, count: int) -> np.ndarray:
    """Each of a map's first `count` rows' plan position (-1 for none), from each position's
    row (`rows`, of a map keyed by trial id: one position a row at most), `END_PART` at a
    time."""
    found = np.full(count, -1, dtype=np.int64)
    for start in range(0, len(rows), END_PART):
        part = rows[start : start + END_PART]
        (at,) = np.nonzero((part >= 0) & (part < count))
        found[part[at]] = at + start
    return found


def applies(compiled: CompiledRun, by: Breakdown) -> bool:
    """Whether a report of `compiled` grouped `by` is one the columns give: the default rows,
    no rows over samples, no judges."""
    spec = compiled.spec
    return by.is_default and not (is_sampled(spec) or spec.judges)


def columnar_report(
    compiled: CompiledRun, state: RunState, index: PlanIndex, by: Breakdown | None = None
) -> Report | None:
    """`build_report(compiled, state, record, by)` of the run whose whole plan `index` holds;
    `None` where the module docstring says, before the index holds the whole plan, or when the
    state holds a trial the plan does not."""
    by = by or Breakdown()
    if not applies(compiled, by):
        return None
    if index.count != compiled.trial_count:  # a trial not read yet may share a logged key
        return None
    facts = FactColumns.of(compiled, state, index)
    if facts is None:
        return None
    return facts.report(compiled, state, by, index.layout(compiled))


# Rows of a fold's map (or plan positions) a run's end reads at once (`fold_report`,
# `case_table`): a part's lists and arrays are ~1 MiB, never a whole run's (ADR 0103).
END_PART: Final = 65_536


class FactColumns:
    """What `trial_facts` gives of each trial of the indexed prefix of the plan, as columns."""

    def __init__(self, count: int, metrics: int) -> None:
        self.scored = np.zeros(count, dtype=bool)
        self.values = np.zeros((metrics, count), dtype=np.float64)  # 0 for a metric missing
        self.unparsed = np.zeros(count, dtype=bool)
        self.generated = np.zeros(count, dtype=bool)
        self.failure = np.zeros(count, dtype=bool)
        self.truncated = np.zeros(count, dtype=bool)
        self.cache_hit = np.zeros(count, dtype=bool)
        self.retried = np.zeros(count, dtype=bool)
        self.served = np.full(count, -1, dtype=np.int32)  # index into `served_ids`
        self.served_ids: list[str] = []

    @classmethod
    def of(cls, compiled: CompiledRun, state: RunState, index: PlanIndex) -> FactColumns | None:
        metrics = [metric.name for metric in compiled.spec.metrics]
        facts = cls(index.count, len(metrics))
        ids, scores = _scores(state.scores)
        at = index.id_positions(ids)
        if at is None:
            return None
        facts.scored[at] = True
        coded, values, _ = distinct_scores(scores, metrics)
        facts.values[:, at] = values[coded].T
        ids, answers = _columns(state.parses, "trial_id", "answer")
        parsed = index.id_positions(ids)
        if parsed is None:
            return None
        unparsed = map(operator.is_, answers, itertools.repeat(None))
        facts.unparsed[parsed] = np.fromiter(unparsed, dtype=bool, count=len(answers))
        if not facts._generations(state, index):
            return None
        return facts if facts._failures(state, index) else None

    @property
    def failed(self) -> np.ndarray:
        """The trials settled by a failure: their key failed, was never generated, and no
        score is held for them (`RunState.failed_generation`)."""
        return ~self.generated & self.failure & ~self.scored

    def _generations(self, state: RunState, index: PlanIndex) -> bool:
        keys, *columns = _columns(state.generations, "trial_key", *GENERATION_FIELDS)
        placed = index.positions(keys)
        if placed is None:
            return False
        rows, at = placed
        self.generated[at] = True
        self.place_generations(at, rows, columns)
        return True

    def place_generations(self, at: Any, rows: np.ndarray, columns: Sequence[list[Any]]) -> None:
        """Set the facts of the trials at `at` (positions, or a mask of them) from the rows
        `rows` of the generations' `GENERATION_FIELDS` `columns`."""
        self.place_rows(at, rows, self.generation_rows(len(columns[0]), [columns]))

    def generation_rows(
        self, count: int, parts: Iterable[Sequence[list[Any]]]
    ) -> tuple[np.ndarray, ...]:
        """Per row of the generations (`count` of them, their `GENERATION_FIELDS` columns
        given a part of the rows at a time, in order): whether it was truncated, a cache hit,
        retried, and its served model id's number among `served_ids` (-1 for none), which it
        sets: the served model ids by their first row (a walk of the plan orders them later)."""
        truncated, hit, retried = (np.empty(count, dtype=bool) for _ in range(3))
        served = np.empty(count, dtype=np.int32)
        codes: dict[str, int] = {}
        start = 0
        for models, reasons, hits, attempts, retries in parts:
            stop = start + len(reasons)
            truncated[start:stop] = _mapped(reasons, TRUNCATED_REASONS.__contains__, bool)
            hit[start:stop] = _mapped(hits, bool, bool)
            again = _mapped(attempts, lambda count: count > 1, bool)
            retried[start:stop] = again | _mapped(retries, bool, bool)
            for model in dict.fromkeys(models):
                if model and model not in codes:
                    codes[model] = len(codes)
            served[start:stop] = _mapped(models, lambda model: codes.get(model, -1), np.int32)
            start = stop
        self.served_ids = list(codes)
        return truncated, hit, retried, served

    def place_rows(self, at: Any, rows: np.ndarray, found: Sequence[np.ndarray]) -> None:
        """Set the facts of the trials at `at` (positions, or a mask of them) from the rows
        `rows` of `generation_rows`' arrays (`found`)."""
        truncated, hit, retried, served = found
        self.truncated[at] = truncated[rows]
        self.cache_hit[at] = hit[rows]
        self.retried[at] = retried[rows]
        self.served[at] = served[rows]

    def _failures(self, state: RunState, index: PlanIndex) -> bool:
        failures = state.generation_failures
        keys = list(failures)
        placed = index.positions(keys)
        if placed is None:
            return False
        rows, at = placed
        self.failure[at] = True
        again = [failures[key].attempts > 1 or bool(failures[key].retries) for key in keys]
        alone = np.asarray(again, dtype=bool)[rows]
        # With a generation, any failure of its key counts as a retry; without one, its own.
        self.retried[at] = np.where(self.generated[at], True, alone)
        return True

    def report(
        self, compiled: CompiledRun, state: RunState, by: Breakdown, layout: PlanLayout
    ) -> Report:
        spec = compiled.spec
        metrics = [metric.name for metric in spec.metrics]
        groups, group_of = layout.groups, layout.group_of
        count = len(self.scored)
        at = group_of[:count]
        failed = self.failed
        settled = self.scored | failed

        def per_group(mask: np.ndarray) -> list[int]:
            return [int(n) for n in np.bincount(at[mask], minlength=len(groups))]

        tally = Tally(metrics)
        planned = np.bincount(group_of, minlength=len(groups))
        counted = {
            "failed": per_group(failed),
            "unparsed": per_group(self.scored & self.unparsed),
            "truncated": per_group(self.truncated),
            "retried": per_group(self.retried),
            "cache_hits": per_group(self.cache_hit),
        }
        for number, group in enumerate(groups):
            tally.values[group]  # the groups in plan order, as a walk of the plan makes them
            for name, counts in counted.items():
                if counts[number]:
                    getattr(tally, name)[group] = counts[number]
        tally.planned = int(planned.sum())
        tally.scored = int(self.scored.sum())
        tally.pending = tally.planned - tally.scored - int(failed.sum())
        cluster_of = layout.cluster_of[:count]
        estimates = {}
        for number, group in enumerate(groups):
            chosen = settled & (at == number)
            clusters = cluster_of[chosen]
            for row, metric in enumerate(metrics):
                values = self.values[row][chosen]
                estimates[(group, metric)] = _estimate(values, clusters)
        rows = tally.rows(
            spec,
            state,
            by,
            sampled=False,
            estimated=lambda group, metric: estimates[(group, metric)],
        )
        return tallied_report(
            compiled, state, by, tally, self._served(compiled, layout), (rows, [])
        )

    def _served(self, compiled: CompiledRun, layout: PlanLayout) -> dict[str, dict[str, int]]:
        """Each model's served model ids with their counts, in the order a walk of the plan
        meets them."""
        spec = compiled.spec
        count = len(self.served)
        model_of = layout.model_of[:count]
        served: dict[str, dict[str, int]] = {model.name: {} for model in spec.models}
        shown = self.served >= 0
        if not shown.any():
            return served
        combined = model_of[shown] * len(self.served_ids) + self.served[shown]
        found, first, counts = np.unique(combined, return_index=True, return_counts=True)
        met = zip(first.tolist(), found.tolist(), counts.tolist(), strict=True)
        for _, code, number in sorted(met):
            model, held = divmod(code, len(self.served_ids))
            served[spec.models[model].name][self.served_ids[held]] = number
        return served


def _estimate(values: np.ndarray, clusters: np.ndarray) -> Estimate:
    """A group's estimate of one metric from its settled trials' `values` and their cases
    (`clusters`): each case's mean as `case_mean` takes it (`math.fsum` of its values over
    their count), then `estimate_of_means` of them."""
    binary = bool(np.all((values == 0.0) | (values == 1.0)))
    # Each case once is seen in plan order without a sort (a run of one trial a case).
    once = bool(np.all(clusters[1:] > clusters[:-1]))
    if not once:
        found, at, counts = np.unique(clusters, return_inverse=True, return_counts=True)
        once = len(found) == len(values)
    if once:  # one value a case: its mean is itself (fsum: -0.0 is 0.0), as floats read a
        means: Sequence[float] = Floats(values + 0.0)  # part at a time, not a list of them
    elif binary:  # sums of 0s and 1s are exact: as fsum's
        means = Floats(np.bincount(at, weights=values) / counts)
    else:
        held: list[list[float]] = [[] for _ in found]
        for place, value in zip(at.tolist(), values.tolist(), strict=True):
            held[place].append(value)
        means = [case_mean(case) for case in held]
    return estimate_of_means(means, len(values), binary=binary)


class Floats(Sequence[float]):
    """A float array as a sequence of Python floats, read `END_PART` at a time (a list of
    them would hold 32 bytes a value: ~30 MiB at 1M trials)."""

    def __init__(self, values: np.ndarray) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, index: Any) -> Any:
        found = self._values[index]
        return found.tolist() if isinstance(index, slice) else float(found)

    def __iter__(self) -> Iterator[float]:
        # Chained in C: a generator's `yield from` cost a Python step a value (~20 ms of a 100k
        # replay's report, its sums read twice a metric: ADR 0119).
        values = self._values
        parts = range(0, len(values), END_PART)
        return itertools.chain.from_iterable(
            values[start : start + END_PART].tolist() for start in parts
        )


def _blocks(compiled: CompiledRun) -> list[tuple[int, int]]:
    """Each dataset's index and how many cases it has, in plan order (datasets without cases
    hold no trial)."""
    return [
        (number, len(dataset.cases))
        for number, dataset in enumerate(compiled.spec.datasets)
        if dataset.cases
    ]


# A plan position's group, case and model numbers: 4 bytes each (a plan of 2**31 positions
# is past any run's memory), not 8 (~12 MiB less at 1M trials, ADR 0103).
_NUMBER: Final = np.int32


class PlanLayout:
    """Where each position of a run's plan stands: its default row group (`groups`, in the
    order a walk of the plan meets them; `group_of`), its case (`cluster_of`, a number that
    `case_ids` maps to the case's id) and its model (`model_of`, the model's index in the
    spec)."""

    def __init__(
        self,
        groups: list[GroupKey],
        group_of: np.ndarray,
        clusters: tuple[np.ndarray, np.ndarray, bool],
        models: np.ndarray,
    ) -> None:
        self.groups, self.group_of = groups, group_of
        self.cluster_of, self.case_ids, self.distinct_ids = clusters
        self.model_of = models

    @classmethod
    def of(cls, compiled: CompiledRun) -> PlanLayout:
        groups, group_of = _groups(compiled)
        return cls(groups, group_of, _clusters(compiled), _model_positions(compiled))


def _groups(compiled: CompiledRun) -> tuple[list[GroupKey], np.ndarray]:
    """The default row groups in the order a walk of the plan meets them, and each plan
    position's group (plan order: dataset, case, prompt, model, sample)."""
    spec = compiled.spec
    prompts, models = len(spec.prompts), len(spec.models)
    numbers: dict[GroupKey, int] = {}
    parts = []
    for dataset, cases in _blocks(compiled):
        within = np.empty((prompts, models), dtype=_NUMBER)
        for p, prompt in enumerate(spec.prompts):
            for m, model in enumerate(spec.models):
                key = (spec.datasets[dataset].name, model.name, prompt.name)
                within[p, m] = numbers.setdefault(key, len(numbers))
        parts.append(np.tile(np.repeat(within.reshape(-1), spec.samples), cases))
    group_of = np.concatenate(parts) if parts else np.zeros(0, dtype=_NUMBER)
    return list(numbers), group_of


def _clusters(compiled: CompiledRun) -> tuple[np.ndarray, np.ndarray, bool]:
    """Each plan position's case, as the report clusters its values (within a row group,
    which holds one dataset: the case id; equal ids of one dataset are one case), and the case
    id each case's number stands for.

    The ids are read once, into numpy `str` arrays a part at a time: no `str` object nor dict
    entry per case is held (at 1M cases, ~0.1 GiB of them stood at the run's end, once for the
    report and once for the case table: ADR 0097). A dataset whose ids sort with no two equal
    neighbours has each case its own number; another is numbered by a dict, as before."""
    spec = compiled.spec
    numbers: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    offset, distinct = 0, True
    for dataset, _ in _blocks(compiled):
        held = _case_ids(spec.datasets[dataset].cases)
        ordered = np.sort(held)  # (a copy sorted in place: no array of its order beside it)
        # numpy's `str` drops trailing NULs: two ids equal there may differ (numbered below).
        if not (ordered[1:] == ordered[:-1]).any():  # every id once: each case its own number
            numbers.append(np.arange(offset, offset + len(held), dtype=_NUMBER))
            ids.append(held)
            offset += len(held)
            continue
        exact = [case.id for case in spec.datasets[dataset].cases]
        first, distinct = dict.fromkeys(exact), False
        at = {case: offset + number for number, case in enumerate(first)}
        numbers.append(np.fromiter(map(at.__getitem__, exact), dtype=_NUMBER, count=len(exact)))
        # Numbers past the distinct ids stand for none.
        ids.append(np.asarray([*first, *exact[len(first) :]], dtype=np.str_))
        offset += len(exact)
    per_case = len(spec.prompts) * len(spec.models) * spec.samples
    numbered = np.concatenate(numbers) if numbers else np.zeros(0, dtype=_NUMBER)
    return np.repeat(numbered, per_case), _joined(ids), distinct


# How many case ids `_case_ids` turns into a numpy array at a time.
_IDS_PART = 65_536


def _case_ids(cases: Sequence[Any]) -> np.ndarray:
    """The ids of `cases` as one numpy array (`_texts`), read a part at a time."""
    ids = (case.id for case in cases)
    parts = []
    while part := list(itertools.islice(ids, _IDS_PART)):
        parts.append(_texts(part))
    return _joined(parts)


def _texts(texts: list[str]) -> np.ndarray:
    """`texts` as a numpy `bytes` array when they are ASCII (a byte a character, where a `str`
    array holds 4: ~18 MiB less at 1M short case ids, ADR 0103; they compare and sort as
    their code points do), else as a `str` array."""
    try:
        return np.asarray(texts, dtype=np.bytes_)
    except UnicodeEncodeError:
        return np.asarray(texts, dtype=np.str_)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """`parts` (of `_texts`) as one array: `bytes` when all are, else `str`."""
    if not parts:
        return np.zeros(0, dtype=np.bytes_)
    if any(part.dtype.kind == "U" for part in parts):
        parts = [part.astype(np.str_) for part in parts]
    return np.concatenate(parts)


def case_texts(ids: np.ndarray) -> np.ndarray:
    """Case ids of `PlanLayout.case_ids` as a numpy `str` array."""
    return ids.astype(np.str_)


def _model_positions(compiled: CompiledRun) -> np.ndarray:
    """Each plan position's model (its index in the spec)."""
    spec = compiled.spec
    per_case = np.tile(np.repeat(np.arange(len(spec.models)), spec.samples), len(spec.prompts))
    cases = sum(cases for _, cases in _blocks(compiled))
    return np.tile(per_case.astype(_NUMBER), cases)

"""`RunningReport`: `build_report` kept current while a run's log grows, for a viewer that
follows a running run (ADR 0052). It keeps each trial's `TrialFacts` and its row group's
counts; the events folded since the last report name the trials they touch (by trial key), and
only those are looked up in the new state and counted again, with the case values of their
clusters. The report is the one `build_report` gives for the same state (tested after every
batch of growing logs): same groups in the same order, same values in the same order.

Runs with rows over samples (pass@k, majority@k, a reducer, stage rules) or with judges are
not kept this way (those rows read the whole state): `RunningReport.of` gives `None`.
A `StageReset` voids results of many trials at once: every trial is counted again then.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from themis.core.breakdown import Breakdown, case_fields
from themis.core.events import Event, StageReset
from themis.core.planner import CompiledRun, PlanRecord, trial_refs
from themis.core.report import (
    GroupKey,
    Report,
    Tally,
    TrialFacts,
    grouping,
    tallied_report,
    trial_facts,
)
from themis.core.report_sampling import is_sampled
from themis.core.state import RunState
from themis.core.stats import Estimate, case_mean, estimate_of_means

__all__ = ["RunningReport"]

_PENDING = TrialFacts(None, False, False, False, None, False, False, None)


class RunningReport:
    """The report of one run grouped `by`, kept current: `touch` it with each batch of events
    folded, then ask `report` of the state they were folded into."""

    def __init__(
        self, compiled: CompiledRun, record: PlanRecord | None, by: Breakdown | None = None
    ) -> None:
        spec = compiled.spec
        self._compiled, self._by = compiled, by or Breakdown()
        self._metrics = [metric.name for metric in spec.metrics]
        group_of = grouping(self._by, case_fields(spec, self._by))
        by_dataset = "dataset" in self._by.plan
        self._tally = tally = Tally(self._metrics)
        self._keys: list[str] = []
        self._ids: list[str] = []
        self._places: list[tuple[GroupKey, Hashable, str]] = []  # group, cluster, model
        self._at_key: dict[str, list[int]] = {}
        self._members: dict[tuple[GroupKey, Hashable], list[int]] = {}
        self._means: dict[tuple[GroupKey, str], _Means] = {}
        for index, trial in enumerate(trial_refs(compiled, record)):
            dataset, case_id, prompt, model, trial_id, trial_key = trial
            group = group_of(dataset, case_id, prompt, model)
            cluster = case_id if by_dataset else (dataset, case_id)
            if group not in tally.values:
                for metric in self._metrics:
                    self._means[(group, metric)] = _Means()
            per_metric = tally.values[group]  # groups and clusters in plan order, as a walk
            for metric in self._metrics:
                per_metric[metric][cluster]
            self._keys.append(trial_key)
            self._ids.append(trial_id)
            self._places.append((group, cluster, model))
            self._at_key.setdefault(trial_key, []).append(index)
            self._members.setdefault((group, cluster), []).append(index)
            tally.count(group, _PENDING)
        self._facts = [_PENDING] * len(self._keys)
        # Per model, each served model id's count and the first trial (in plan order) it served.
        self._served: dict[str, dict[str, list[int]]] = {model.name: {} for model in spec.models}
        self._touched: set[int] | None = None  # `None`: every trial

    @classmethod
    def of(
        cls, compiled: CompiledRun, record: PlanRecord | None, by: Breakdown | None = None
    ) -> RunningReport | None:
        """A running report of the run, or `None` when its report cannot be kept this way."""
        if is_sampled(compiled.spec) or compiled.spec.judges:
            return None
        return cls(compiled, record, by)

    @property
    def by(self) -> Breakdown:
        return self._by

    def touch(self, events: Iterable[Event]) -> None:
        """Note the trials `events` (folded since the last `report`) are about."""
        if self._touched is None:
            return
        at_key = self._at_key
        for event in events:
            if isinstance(event, StageReset):
                self._touched = None
                return
            trial_key = getattr(event, "trial_key", None)
            if trial_key is not None:
                self._touched.update(at_key.get(trial_key, ()))

    def report(self, state: RunState) -> Report:
        """`build_report` of `state`: the state every event touched so far was folded into."""
        touched = range(len(self._keys)) if self._touched is None else self._touched
        facts_of = trial_facts(state)
        tally, facts, places = self._tally, self._facts, self._places
        changed: set[tuple[GroupKey, Hashable]] = set()
        for index in touched:
            new = facts_of(self._keys[index], self._ids[index])
            old = facts[index]
            if new == old:
                continue
            group, cluster, model = places[index]
            tally.count(group, old, -1)
            tally.count(group, new)
            if old.served != new.served:
                self._serve(model, old.served, index, -1)
                self._serve(model, new.served, index, 1)
            if old.settled or new.settled:
                changed.add((group, cluster))
            facts[index] = new
        for group, cluster in changed:
            self._recount(group, cluster)
        self._touched = set()
        spec, by = self._compiled.spec, self._by
        rows = tally.rows(spec, state, by, sampled=False, estimated=self._estimate)
        return tallied_report(
            self._compiled, state, self._by, tally, self._served_counts(), (rows, [])
        )

    def _serve(self, model: str, served: str | None, index: int, sign: int) -> None:
        if not served:
            return
        held = self._served[model].setdefault(served, [0, index])
        held[0] += sign
        held[1] = min(held[1], index)

    def _served_counts(self) -> dict[str, dict[str, int]]:
        """Each model's served model ids with their counts, in the order a walk of the plan
        meets them."""
        return {
            model: {
                served: held[0]
                for served, held in sorted(ids.items(), key=lambda item: item[1][1])
                if held[0] > 0
            }
            for model, ids in self._served.items()
        }

    def _recount(self, group: GroupKey, cluster: Hashable) -> None:
        """The case values of one cluster of one group, from its settled trials in plan order,
        and what each metric's estimate of the group reads of them: the case's mean, the
        count of values, whether some value is neither 0 nor 1."""
        values: list[list[float]] = [[] for _ in self._metrics]
        for index in self._members[(group, cluster)]:
            facts = self._facts[index]
            if facts.settled:
                for held, value in zip(values, facts.values(self._metrics), strict=True):
                    held.append(value)
        per_metric = self._tally.values[group]
        for metric, held in zip(self._metrics, values, strict=True):
            old = per_metric[metric][cluster]
            per_metric[metric][cluster] = held
            means = self._means[(group, metric)]
            means.n += len(held) - len(old)
            means.other += _other(held) - _other(old)
            if held:
                means.of[cluster] = case_mean(held)
            else:
                means.of.pop(cluster, None)

    def _estimate(self, group: GroupKey, metric: str) -> Estimate:
        means = self._means[(group, metric)]
        return estimate_of_means(list(means.of.values()), means.n, binary=not means.other)


class _Means:
    """One group's case means for one metric (by cluster), the count of their values and how
    many clusters hold a value neither 0 nor 1."""

    def __init__(self) -> None:
        self.of: dict[Hashable, float] = {}
        self.n = 0
        self.other = 0


def _other(values: list[float]) -> int:
    """1 if some value is neither 0 nor 1, else 0."""
    return 0 if all(value in (0.0, 1.0) for value in values) else 1

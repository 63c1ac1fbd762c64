"""What a report's rows are grouped by: the plan's dimensions and the cases' own fields.

The default is one row group per dataset × model × prompt. `--by` names dimensions: `dataset`,
`model`, `prompt`, or any field of the cases (e.g. `difficulty`). Case fields named alone are
added to the default (`difficulty` = dataset × model × prompt × difficulty); naming a plan
dimension makes the list exact, and a plan dimension left out is pooled (shown as `*`).
Whatever the grouping, a case stays one cluster: the mean is the mean of case means, and a case
seen under several prompts or models averages all of its trials first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from attrs import frozen

from themis.core.errors import ConfigError
from themis.core.spec import Case, ExperimentSpec, JsonValue

PLAN_DIMENSIONS = ("dataset", "model", "prompt")
POOLED = "*"


@frozen
class Breakdown:
    """The dimensions rows are grouped by, in order: plan dimensions, then case fields."""

    plan: tuple[str, ...] = PLAN_DIMENSIONS
    fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, names: Iterable[str]) -> Breakdown:
        """The grouping `--by` names (comma-separated items are split); see the module doc."""
        wanted = [name.strip() for item in names for name in item.split(",") if name.strip()]
        unique = list(dict.fromkeys(wanted))
        plan = tuple(name for name in PLAN_DIMENSIONS if name in unique)
        fields = tuple(name for name in unique if name not in PLAN_DIMENSIONS)
        return cls(plan=plan if plan else PLAN_DIMENSIONS, fields=fields)

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (*self.plan, *self.fields)

    @property
    def is_default(self) -> bool:
        return self.plan == PLAN_DIMENSIONS and not self.fields

    def place(self, dataset: str, model: str, prompt: str) -> tuple[str, str, str]:
        """The (dataset, model, prompt) a row shows: `*` for each pooled dimension."""
        return (
            dataset if "dataset" in self.plan else POOLED,
            model if "model" in self.plan else POOLED,
            prompt if "prompt" in self.plan else POOLED,
        )


def field_names(spec: ExperimentSpec) -> tuple[str, ...]:
    """Every case field some case of the run has, sorted: what rows may also be grouped by."""
    return tuple(
        sorted(
            {name for dataset in spec.datasets for case in dataset.cases for name in case.fields}
        )
    )


def check_breakdown(spec: ExperimentSpec, breakdown: Breakdown) -> None:
    """Raise `ConfigError` (one line) for a case field no case of the run has."""
    if not breakdown.fields:  # nothing to look for among every case's fields
        return
    known = field_names(spec)
    for name in breakdown.fields:
        if name not in known:
            choices = ", ".join([*PLAN_DIMENSIONS, *known])
            raise ConfigError(
                f"--by: no case of run {spec.name!r} has a field {name!r} (choose from {choices})"
            )


def field_value(value: JsonValue | None) -> str | None:
    """A case field as a row label: strings as they are, other JSON values as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def case_fields(
    spec: ExperimentSpec, breakdown: Breakdown
) -> Mapping[tuple[str, str], tuple[str | None, ...]]:
    """Each (dataset, case id)'s values of the breakdown's case fields (`None`: lacks it)."""
    if not breakdown.fields:
        return {}
    return {
        (dataset.name, case.id): _values(case, breakdown.fields)
        for dataset in spec.datasets
        for case in dataset.cases
    }


def _values(case: Case, names: tuple[str, ...]) -> tuple[str | None, ...]:
    return tuple(field_value(case.fields.get(name)) for name in names)

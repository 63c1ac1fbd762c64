"""What differs between two experiment configs, field by field, and whether it forks the run.

Every change is classified through `FIELD_CLASSES`: a change inside an identity field keeps that
class unless a nested field says otherwise (a dataset's `path` is provenance even though the
dataset is identity). Lists of named items (datasets, models, prompts, metrics) are matched by
name, cases by id, so editing one item reads as a change of that item, not of every later one;
a new order of the same items is one change of the list (order is part of the identity).

Values are compared as their canonical JSON too, so `1` and `1.0` (or `1` and `true`) differ
here exactly when they differ in `run_id`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from attrs import frozen

from themis.core.identity import FIELD_CLASSES, FieldClass, option_class
from themis.core.runtime import RuntimeConfig
from themis.core.spec import Case, ExperimentSpec, ModelSpec

ABSENT = "<absent>"  # the old or new value of an item only one side has
_MISSING = ABSENT
_MAX_CASE_CHANGES = 5


@frozen
class FieldChange:
    """One differing value: its dotted path, its class, and the old and new values."""

    path: str
    field_class: FieldClass
    old: Any
    new: Any


@frozen
class ConfigDiff:
    changes: tuple[FieldChange, ...]

    def of_class(self, field_class: FieldClass) -> tuple[FieldChange, ...]:
        return tuple(change for change in self.changes if change.field_class is field_class)

    @property
    def same_run(self) -> bool:
        """True when no identity field differs, i.e. both configs compile to one `run_id`."""
        return not self.of_class(FieldClass.IDENTITY)


def diff_specs(old: ExperimentSpec, new: ExperimentSpec) -> tuple[FieldChange, ...]:
    """Every differing field of two experiment specs."""
    changes: list[FieldChange] = []
    _diff(old, new, "", FieldClass.IDENTITY, changes)
    return tuple(changes)


def diff_runtime(old: RuntimeConfig, new: RuntimeConfig) -> tuple[FieldChange, ...]:
    """Every differing runtime setting (all of them are runtime fields)."""
    changes: list[FieldChange] = []
    _diff(old, new, "runtime", FieldClass.RUNTIME, changes)
    return tuple(changes)


def diff_configs(
    old: tuple[ExperimentSpec, RuntimeConfig], new: tuple[ExperimentSpec, RuntimeConfig]
) -> ConfigDiff:
    """The spec and runtime differences between two loaded configs."""
    return ConfigDiff(diff_specs(old[0], new[0]) + diff_runtime(old[1], new[1]))


def _diff(old: Any, new: Any, path: str, inherited: FieldClass, out: list[FieldChange]) -> None:
    if _equal(old, new):
        return
    if attrs.has(type(old)) and type(old) is type(new):
        table = FIELD_CLASSES[type(old)]
        for attribute in attrs.fields(type(old)):
            name = attribute.name
            field_class = table[name] if inherited is FieldClass.IDENTITY else inherited
            identity = field_class is FieldClass.IDENTITY
            if identity and isinstance(old, ModelSpec) and name == "options":
                _diff_options(old, new, _join(path, name), out)
                continue
            _diff(getattr(old, name), getattr(new, name), _join(path, name), field_class, out)
        return
    if _is_named_sequence(old) and _is_named_sequence(new):
        if _is_cases(old) or _is_cases(new):
            _diff_cases(old, new, path, inherited, out)
            return
        _diff_keyed(
            {item.name: item for item in old},
            {item.name: item for item in new},
            path,
            inherited,
            out,
        )
        old_order, new_order = _common_order(old, new, "name")
        if old_order != new_order:
            out.append(FieldChange(path, inherited, old_order, new_order))
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        _diff_keyed(old, new, path, inherited, out)
        return
    out.append(FieldChange(path, inherited, _plain(old), _plain(new)))


def _diff_options(old: ModelSpec, new: ModelSpec, path: str, out: list[FieldChange]) -> None:
    """A model's options, each classified by `option_class` (e.g. the fake's `latency_s`)."""
    for cls in (FieldClass.IDENTITY, FieldClass.RUNTIME):
        _diff_keyed(
            {k: v for k, v in old.options.items() if option_class(old.provider, k) is cls},
            {k: v for k, v in new.options.items() if option_class(new.provider, k) is cls},
            path,
            cls,
            out,
        )


def _diff_keyed(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    path: str,
    inherited: FieldClass,
    out: list[FieldChange],
) -> None:
    for key in [*old.keys(), *(key for key in new if key not in old)]:
        child = _join(path, str(key))
        if key not in new:
            out.append(FieldChange(child, inherited, _plain(old[key]), _MISSING))
        elif key not in old:
            out.append(FieldChange(child, inherited, _MISSING, _plain(new[key])))
        else:
            _diff(old[key], new[key], child, inherited, out)


def _diff_cases(
    old: Sequence[Case],
    new: Sequence[Case],
    path: str,
    inherited: FieldClass,
    out: list[FieldChange],
) -> None:
    """Cases are summarised: a few named changes, then a count, never a dump of the dataset."""
    before, after = {case.id: case for case in old}, {case.id: case for case in new}
    changed = [
        case_id
        for case_id in before
        if case_id in after and not _equal(before[case_id], after[case_id])
    ]
    removed = [case_id for case_id in before if case_id not in after]
    added = [case_id for case_id in after if case_id not in before]
    old_order, new_order = _common_order(old, new, "id")
    reordered = old_order != new_order
    for case_id in changed[:_MAX_CASE_CHANGES]:
        _diff(before[case_id], after[case_id], f"{path}[{case_id}]", inherited, out)
    if len(changed) > _MAX_CASE_CHANGES or removed or added or reordered:
        summary = f"{len(changed)} changed, {len(added)} added, {len(removed)} removed"
        summary += ", reordered" if reordered else ""
        out.append(
            FieldChange(
                f"{path}", inherited, f"{len(before)} cases", f"{len(after)} cases ({summary})"
            )
        )


def _common_order(old: Sequence[Any], new: Sequence[Any], key: str) -> tuple[list[Any], list[Any]]:
    """The keys both sequences hold, in each one's order."""
    old_keys = [getattr(item, key) for item in old]
    new_keys = [getattr(item, key) for item in new]
    shared = set(old_keys) & set(new_keys)
    return [k for k in old_keys if k in shared], [k for k in new_keys if k in shared]


def _equal(old: Any, new: Any) -> bool:
    """Equal as values and as JSON: `==` alone takes `1 == 1.0 == True`."""
    if old != new:
        return False
    return type(old) is type(new) and (_is_scalar(old) or _same_json(old, new))


def _same_json(old: Any, new: Any) -> bool:
    """For two `==` values: whether their JSON texts (`_json_text`) are the same too, found by
    walking both instead of rendering them: equal values differ in JSON only where a number
    changed type (`1`, `1.0`, `true`) or the sign of a zero. Walking 100,000 equal cases costs
    a fraction of rendering them twice (a replay's check of its config, ADR 0049)."""
    kind = type(old)
    if kind is not type(new):
        if isinstance(old, bool | int | float) or isinstance(new, bool | int | float):
            return False
        return _json_text(old) == _json_text(new)  # e.g. two kinds of mapping: as rendered
    if kind is str or old is None or kind is int or kind is bool:
        return True
    if kind is float:
        return math.copysign(1.0, old) == math.copysign(1.0, new)
    if kind is Case:  # `id` and `expected` are text, equal already
        return _same_json(old.fields, new.fields)
    if attrs.has(kind):
        return all(
            _same_json(getattr(old, field.name), getattr(new, field.name))
            for field in attrs.fields(kind)
        )
    if kind is dict and all(type(key) is str for key in old):  # equal dicts: the same keys
        return all(_same_json(value, new[key]) for key, value in old.items())
    if kind is tuple or kind is list:  # equal sequences: the same length
        return all(map(_same_json, old, new))
    return _json_text(old) == _json_text(new)


def _json_text(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), default=repr)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_cases(value: tuple[Any, ...]) -> bool:
    return bool(value) and isinstance(value[0], Case)


def _is_named_sequence(value: Any) -> bool:
    return isinstance(value, tuple) and all(
        hasattr(item, "name") or isinstance(item, Case) for item in value
    )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _plain(value: Any) -> Any:
    """A JSON-ready rendering of a value, every field kept (attrs classes become mappings)."""
    if type(value) is Case:  # its fields are JSON values already (checked when it was built)
        return {"id": value.id, "fields": value.fields, "expected": value.expected}
    if attrs.has(type(value)):
        return {
            attribute.name: _plain(getattr(value, attribute.name))
            for attribute in attrs.fields(type(value))
        }
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value

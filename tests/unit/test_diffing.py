"""Config diffs: every change is classified identity / runtime / provenance, named items are matched
by name and cases by id, and `same_run` holds exactly when both configs compile to one `run_id`."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import cases, small_spec
from themis.core.diffing import ConfigDiff, FieldChange, diff_configs, diff_runtime, diff_specs
from themis.core.identity import FieldClass
from themis.core.planner import compile_run, plan
from themis.core.runtime import RateLimit, RuntimeConfig
from themis.core.spec import Case, DatasetSpec, ExperimentSpec, MetricSpec, ModelSpec, PromptSpec

ID, RT, PV = FieldClass.IDENTITY, FieldClass.RUNTIME, FieldClass.PROVENANCE
Config = tuple[ExperimentSpec, RuntimeConfig]
Change = Callable[[Config], Config]


def _base() -> Config:
    return small_spec(), RuntimeConfig()


def _spec(change: Callable[[ExperimentSpec], ExperimentSpec]) -> Change:
    return lambda config: (change(config[0]), config[1])


def _runtime(**values: object) -> Change:
    return lambda config: (config[0], attrs.evolve(config[1], **values))


def _model(index: int, **values: object) -> Callable[[ExperimentSpec], ExperimentSpec]:
    def change(spec: ExperimentSpec) -> ExperimentSpec:
        models = list(spec.models)
        models[index] = attrs.evolve(models[index], **values)
        return attrs.evolve(spec, models=models)

    return change


def _dataset(**values: object) -> Callable[[ExperimentSpec], ExperimentSpec]:
    return lambda spec: attrs.evolve(spec, datasets=[attrs.evolve(spec.datasets[0], **values)])


def _reversed(field_name: str) -> Callable[[ExperimentSpec], ExperimentSpec]:
    return lambda spec: attrs.evolve(spec, **{field_name: tuple(getattr(spec, field_name))[::-1]})


def _triples(diff: ConfigDiff | tuple[FieldChange, ...]) -> list[tuple[str, FieldClass]]:
    changes = diff.changes if isinstance(diff, ConfigDiff) else diff
    return [(change.path, change.field_class) for change in changes]


# --- classification ----------------------------------------------------------------------------


def test_equal_configs_have_no_changes_and_are_the_same_run() -> None:
    diff = diff_configs(_base(), _base())

    assert diff.changes == ()
    assert diff.same_run


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_spec(lambda s: attrs.evolve(s, seed=8)), [("seed", ID)]),
        (_spec(lambda s: attrs.evolve(s, samples=3)), [("samples", ID)]),
        (_spec(lambda s: attrs.evolve(s, name="renamed")), [("name", PV)]),
        (_spec(_dataset(path="elsewhere.jsonl")), [("datasets.arith.path", PV)]),
        (
            _spec(_dataset(id_field="key", limit=2)),
            [("datasets.arith.id_field", PV), ("datasets.arith.limit", PV)],
        ),
        (_spec(_model(1, options={"skill": 0.6})), [("models.m2.options.skill", ID)]),
        (_spec(_model(0, model="fake-9")), [("models.m1.model", ID)]),
        (
            _spec(_model(1, params=attrs.evolve(small_spec().models[1].params, top_p=None))),
            [("models.m2.params.top_p", ID)],
        ),
        (_runtime(max_concurrent_tasks=3), [("runtime.max_concurrent_tasks", RT)]),
        (
            _runtime(provider_rate_limits={"fake": RateLimit(requests_per_minute=60)}),
            [("runtime.provider_rate_limits.fake", RT)],
        ),
        (_runtime(existing_run_policy="rerun"), [("runtime.existing_run_policy", RT)]),
    ],
    ids=[
        "seed",
        "samples",
        "name",
        "dataset-path",
        "loader-options",
        "option",
        "model-id",
        "param",
        "concurrency",
        "rate-limit",
        "policy",
    ],
)
def test_each_change_is_classified(change: Change, expected: list[tuple[str, FieldClass]]) -> None:
    diff = diff_configs(_base(), change(_base()))

    assert _triples(diff) == expected
    assert diff.same_run is all(field_class is not ID for _, field_class in expected)


def test_a_runtime_change_inside_a_mapping_keeps_the_runtime_class() -> None:
    old = RuntimeConfig(provider_rate_limits={"fake": RateLimit(requests_per_minute=60)})
    new = RuntimeConfig(provider_rate_limits={"fake": RateLimit(requests_per_minute=30)})

    changes = diff_runtime(old, new)

    assert _triples(changes) == [("runtime.provider_rate_limits.fake.requests_per_minute", RT)]
    assert (changes[0].old, changes[0].new) == (60, 30)


def test_changes_carry_plain_old_and_new_values() -> None:
    old, new = small_spec(), _model(1, options={"skill": 0.25})(small_spec())

    (change,) = diff_specs(old, new)

    assert change == FieldChange("models.m2.options.skill", ID, 0.5, 0.25)


def test_the_fake_models_latency_is_a_runtime_option() -> None:
    old, new = small_spec(), _model(1, options={"skill": 0.5, "latency_s": 0.1})(small_spec())

    (change,) = diff_specs(old, new)

    assert change == FieldChange("models.m2.options.latency_s", RT, "<absent>", 0.1)
    assert compile_run(old).run_id == compile_run(new).run_id
    assert [t.trial_key for t in plan(compile_run(old))] == [
        t.trial_key for t in plan(compile_run(new))
    ]


def test_an_int_and_a_float_differ_exactly_when_the_run_id_does() -> None:
    as_int = _model(0, options={"skill": 1})(small_spec())
    as_float = _model(0, options={"skill": 1.0})(small_spec())

    changes = diff_specs(as_int, as_float)

    assert _triples(changes) == [("models.m1.options.skill", ID)]
    assert compile_run(as_int).run_id != compile_run(as_float).run_id


# --- named items and cases ---------------------------------------------------------------------


def test_named_items_are_matched_by_name_not_position() -> None:
    spec = small_spec()
    inserted = attrs.evolve(
        spec, prompts=(PromptSpec(name="new", template="{{ a }}?"), *spec.prompts)
    )

    changes = diff_specs(spec, inserted)

    assert _triples(changes) == [("prompts.new", ID)]  # the others keep their relative order
    assert changes[0].old == "<absent>"
    assert changes[0].new == {
        "name": "new",
        "template": "{{ a }}?",
        "system": None,
        "few_shot": None,
    }


def test_a_removed_and_an_added_model_are_two_changes() -> None:
    spec = small_spec()
    renamed = _model(0, name="m1b")(spec)

    assert _triples(diff_specs(spec, renamed)) == [("models.m1", ID), ("models.m1b", ID)]


@pytest.mark.parametrize("field_name", ["models", "prompts", "metrics"])
def test_a_new_order_of_the_same_items_is_one_identity_change(field_name: str) -> None:
    spec = small_spec()
    reordered = _reversed(field_name)(spec)

    (change,) = diff_specs(spec, reordered)

    names = [item.name for item in getattr(spec, field_name)]
    assert (change.path, change.field_class) == (field_name, ID)
    assert (change.old, change.new) == (names, names[::-1])
    assert compile_run(spec).run_id != compile_run(reordered).run_id


def test_a_changed_case_is_named_by_its_id() -> None:
    spec = small_spec()
    edited = list(spec.datasets[0].cases)
    edited[1] = attrs.evolve(edited[1], expected="999")

    (change,) = diff_specs(spec, _dataset(cases=edited)(spec))

    assert change == FieldChange("datasets.arith.cases[c1].expected", ID, "3", "999")


def test_many_case_changes_are_summarised() -> None:
    spec = small_spec(datasets=(DatasetSpec(name="d", cases=cases(20)),))
    # c0 removed, c1..c7 changed, c8..c19 kept, c20 and c21 added
    edited = [attrs.evolve(case, expected="x") for case in cases(22)[1:8]] + list(cases(22)[8:])
    new = small_spec(datasets=(DatasetSpec(name="d", cases=edited),))

    changes = diff_specs(spec, new)

    detailed = [change for change in changes if change.path != "datasets.d.cases"]
    (summary,) = [change for change in changes if change.path == "datasets.d.cases"]
    assert [change.path for change in detailed] == [
        f"datasets.d.cases[c{index}].expected" for index in range(1, 6)
    ]
    assert (summary.old, summary.new) == ("20 cases", "21 cases (7 changed, 2 added, 1 removed)")
    assert all(change.field_class is ID for change in changes)


def test_reordered_cases_are_reported_as_such() -> None:
    spec = small_spec(datasets=(DatasetSpec(name="d", cases=cases(3)),))
    reordered = small_spec(datasets=(DatasetSpec(name="d", cases=cases(3)[::-1]),))

    (change,) = diff_specs(spec, reordered)

    assert (change.path, change.old) == ("datasets.d.cases", "3 cases")
    assert change.new == "3 cases (0 changed, 0 added, 0 removed, reordered)"


# --- same_run iff equal run_ids ----------------------------------------------------------------

CHANGES: dict[str, Change] = {
    "seed": _spec(lambda s: attrs.evolve(s, seed=s.seed + 1)),
    "name": _spec(lambda s: attrs.evolve(s, name=s.name + "!")),
    "samples": _spec(lambda s: attrs.evolve(s, samples=s.samples + 1)),
    "dataset-path": _spec(_dataset(path="moved.jsonl")),
    "dataset-limit": _spec(_dataset(limit=5)),
    "case-expected": _spec(
        lambda s: _dataset(cases=[attrs.evolve(s.datasets[0].cases[0], expected="0!")])(s)
    ),
    "case-added": _spec(  # a fresh id each time: the change composes with itself
        lambda s: _dataset(
            cases=[
                *s.datasets[0].cases,
                Case(id=f"z{len(s.datasets[0].cases)}", fields={"a": 1, "b": 2}),
            ]
        )(s)
    ),
    "cases-reversed": _spec(lambda s: _dataset(cases=s.datasets[0].cases[::-1])(s)),
    "option-int": _spec(_model(0, options={"skill": 1})),
    "option-float": _spec(_model(0, options={"skill": 1.0})),
    "model-id": _spec(_model(0, model="fake-other")),
    "models-reversed": _spec(_reversed("models")),
    "prompts-reversed": _spec(_reversed("prompts")),
    "template": _spec(
        lambda s: attrs.evolve(
            s, prompts=[attrs.evolve(s.prompts[0], template="{{ b }} + {{ a }}"), *s.prompts[1:]]
        )
    ),
    "metric-tolerance": _spec(
        lambda s: attrs.evolve(s, metrics=[MetricSpec(name="exact_match", tolerance=0.5)])
    ),
    "model-added": _spec(
        lambda s: attrs.evolve(
            s, models=[*s.models, ModelSpec(name=f"m{len(s.models) + 1}", model="fake-3")]
        )
    ),
    "concurrency": _runtime(max_concurrent_tasks=2),
    "batch": _runtime(store_batch_size=10, store_flush_interval=0.01),
    "progress": _runtime(progress="off"),
}


@settings(max_examples=60, deadline=None)
@given(
    old=st.lists(st.sampled_from(sorted(CHANGES)), max_size=4),
    new=st.lists(st.sampled_from(sorted(CHANGES)), max_size=4),
)
def test_same_run_holds_iff_the_run_ids_are_equal(old: list[str], new: list[str]) -> None:
    a, b = _base(), _base()
    for name in old:
        a = CHANGES[name](a)
    for name in new:
        b = CHANGES[name](b)

    diff = diff_configs(a, b)

    same_ids = compile_run(a[0]).run_id == compile_run(b[0]).run_id
    assert diff.same_run is same_ids, _triples(diff)
    assert diff_configs(b, a).same_run is same_ids
    if old == new:
        assert diff.changes == ()


@pytest.mark.parametrize(
    "names",
    [
        ["concurrency", "name", "dataset-path"],
        ["seed"],
        ["models-reversed", "models-reversed"],
        ["option-int"],
        ["option-int", "option-float"],
        ["cases-reversed"],
        ["batch", "progress"],
    ],
)
def test_same_run_on_chosen_change_lists(names: list[str]) -> None:
    changed = _base()
    for name in names:
        changed = CHANGES[name](changed)

    diff = diff_configs(_base(), changed)

    assert diff.same_run is (compile_run(_base()[0]).run_id == compile_run(changed[0]).run_id)
    assert bool(diff.of_class(ID)) is not diff.same_run


def test_a_case_renders_as_the_generic_walk_renders_it() -> None:
    # `_plain` takes a direct path for a `Case` (a 100k-case replay compares its datasets);
    # as JSON text it must equal the attrs walk, nested values and `1` vs `1.0` vs `True` kept.
    import json

    import attrs

    from themis.core import diffing
    from themis.core.spec import Case

    def walked(value: object) -> object:
        if attrs.has(type(value)):
            return {a.name: walked(getattr(value, a.name)) for a in attrs.fields(type(value))}
        if isinstance(value, dict):
            return {str(key): walked(item) for key, item in value.items()}
        if isinstance(value, tuple | list):
            return [walked(item) for item in value]
        return value

    cases = [
        Case(id="a", fields={"q": "x", "n": 1, "f": 1.0, "b": True, "none": None}, expected="1"),
        Case(id="b", fields={"nested": {"k": [1, 2.5, {"deep": False}]}, "list": [[1], []]}),
    ]
    for case in cases:
        fast = json.dumps(diffing._plain(case), sort_keys=True, separators=(",", ":"))
        generic = json.dumps(walked(case), sort_keys=True, separators=(",", ":"))
        assert fast == generic
    as_float = attrs.evolve(cases[0], fields={**cases[0].fields, "n": 1.0})
    assert diffing._equal((cases[0],), (attrs.evolve(cases[0]),))
    assert not diffing._equal((cases[0],), (as_float,))  # 1 == 1.0, yet another value


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5]),
    st.sampled_from(["", "a", "1"]),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["a", "b", "1"]), inner, max_size=3),
    ),
    max_leaves=8,
)


def _equal_twin(value: object, draw: st.DrawFn) -> object:
    """A value `==` to `value` whose numbers may have another type or zero sign (`1` as `1.0`
    or `True`, `0.0` as `-0.0`): equal, and maybe not the same JSON."""
    if isinstance(value, bool | int | float):
        twins = [value, *(kind(value) for kind in (bool, int, float) if kind(value) == value)]
        if value == 0:
            twins.append(-0.0)
        return draw(st.sampled_from(twins))
    if isinstance(value, dict):
        return {key: _equal_twin(item, draw) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_equal_twin(item, draw) for item in value)
    return value


def _in_a_dataset(value: object) -> DatasetSpec:
    return DatasetSpec(name="d", cases=(Case(id="c", fields={"v": value}, expected=None),))


@settings(max_examples=300)
@given(st.data(), _JSON_VALUES)
def test_equal_values_compare_as_their_json_does(data: st.DataObject, old: object) -> None:
    # `_same_json` walks what `_json_text` renders: for `==` values both must agree (ADR 0049).
    from themis.core import diffing

    new = _equal_twin(old, data.draw)
    for left, right in ((old, new), (_in_a_dataset(old), _in_a_dataset(new))):
        assert left == right
        rendered = diffing._json_text(left) == diffing._json_text(right)
        assert diffing._same_json(left, right) is rendered

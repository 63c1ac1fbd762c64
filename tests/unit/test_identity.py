"""Identity: every field is classified once, runtime never moves `run_id`, identity always does."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import attrs
import pytest

import themis.core.benchmark
import themis.core.endpoint
import themis.core.identity as identity_module
import themis.core.project
import themis.core.runtime
import themis.core.spec
from tests.unit.builders import many_cases_spec, small_spec
from themis.core import planner
from themis.core.endpoint import Endpoint
from themis.core.identity import (
    FIELD_CLASSES,
    OMITTED_AT_DEFAULT,
    RUNTIME_OPTIONS,
    FieldClass,
    _attrs_view,
    canonical_json,
    classification,
    digest,
    identity_view,
    spec_json,
)
from themis.core.planner import (
    compile_beside,
    compile_placed,
    compile_run,
    compile_stored,
    plan,
)
from themis.core.runtime import Price, RateLimit, RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    FewShotSpec,
    GenerationParams,
    JudgeSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
    ReducerSpec,
    SandboxLimits,
    SkipWhen,
    ValidationRule,
    VerdictSpec,
)

CLASSIFIED_MODULES: tuple[ModuleType, ...] = (
    themis.core.spec,
    themis.core.benchmark,
    themis.core.runtime,
    themis.core.endpoint,
    themis.core.project,
)

# compile_run(small_spec()).run_id, pinned: if this changes, every stored run loses its cache.
PINNED_RUN_ID = "7541ed4d415c7ab1fcb1af6b571c9d69fccf41e25a75837d5b66b8d3929c53c8"
# The same spec compiled before issue 9 (number parser, exact_match and numeric_match v1).
PINNED_V1_RUN_ID = "401e28ed786aa9ae30ab46a0af7d0120e40c8caa10220e8fe25670d673146a0c"


def _attrs_classes(module: ModuleType) -> list[type]:
    return [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if attrs.has(member) and member.__module__ == module.__name__
    ]


DISCOVERED = [cls for module in CLASSIFIED_MODULES for cls in _attrs_classes(module)]


# --- classification completeness --------------------------------------------------------------


def test_discovery_finds_the_known_classes() -> None:
    names = {cls.__name__ for cls in DISCOVERED}
    assert {"ExperimentSpec", "DatasetSpec", "Case", "ModelSpec", "RuntimeConfig"} <= names
    assert {"RateLimit", "GenerationParams", "PromptSpec", "ParserSpec", "MetricSpec"} <= names


@pytest.mark.parametrize("cls", DISCOVERED, ids=lambda cls: cls.__name__)
def test_every_field_is_classified(cls: type) -> None:
    assert cls in FIELD_CLASSES, f"{cls.__name__} has no entry in FIELD_CLASSES"
    fields = set(attrs.fields_dict(cls))
    missing = fields - set(FIELD_CLASSES[cls])
    assert not missing, f"{cls.__name__}: unclassified field(s) {sorted(missing)}"
    for name in fields:
        assert isinstance(classification(cls, name), FieldClass)


@pytest.mark.parametrize("cls", list(FIELD_CLASSES), ids=lambda cls: cls.__name__)
def test_table_has_no_stale_entries(cls: type) -> None:
    assert cls in DISCOVERED, (
        f"FIELD_CLASSES names {cls.__name__}, which is not a spec/config class"
    )
    stale = set(FIELD_CLASSES[cls]) - set(attrs.fields_dict(cls))
    assert not stale, f"{cls.__name__}: FIELD_CLASSES lists removed field(s) {sorted(stale)}"


def test_unclassified_lookup_fails_loudly() -> None:
    with pytest.raises(KeyError):
        classification(ExperimentSpec, "no_such_field")


# --- runtime and provenance never change run_id -----------------------------------------------

RUNTIME_CHANGES: dict[str, Any] = {
    "max_concurrent_tasks": 4,
    "stage_concurrency": {"generate": 2},
    "provider_concurrency": {"fake": 3},
    "provider_rate_limits": {"fake": RateLimit(requests_per_minute=60, tokens_per_minute=1000)},
    "generation_retry_attempts": 9,
    "generation_retry_delay": 0.1,
    "generation_retry_backoff": 3.0,
    "judge_retry_attempts": 9,
    "judge_retry_delay": 0.1,
    "judge_retry_backoff": 3.0,
    "store_retry_attempts": 9,
    "store_retry_delay": 0.1,
    "store_batch_size": 10,
    "store_flush_interval": 0.1,
    "checkpoint_interval": 0,
    "reuse_generations": False,
    "existing_run_policy": "rerun",
    "progress": "off",
    "breaker_failure_threshold": 2,
    "breaker_failure_rate": 0.2,
    "breaker_window": 5.0,
    "breaker_min_calls": 3,
    "breaker_recovery_timeout": 5.0,
    "call_timeout": None,
    "idle_timeout": 300.0,
    "max_retry_delay": 10.0,
    "max_retry_after": 30.0,
    "retry_jitter": 0.0,
    "model_prices": {"fake-1": Price(input_per_1k=0.003, output_per_1k=0.015)},
    "max_cost_per_trial": 0.5,
    "max_cost_per_run": 100.0,
    "token_warning_threshold": 0.5,
    "token_error_threshold": None,
    "context_windows": {"fake-1": 8192},
    "assumed_output_tokens": 64,
    "assumed_latency_s": 0.5,
    "endpoints": {
        "openai": Endpoint(
            base_url="http://127.0.0.1:8000/v1",
            path="/chat",
            api_key="${LOCAL_KEY}",
            headers={"X-Org": "${ORG}"},
            anthropic_version="2024-01-01",
            http2=True,
        )
    },
    "executor": "ray",
    "ray_address": "ray://10.0.0.1:10001",
}


def test_compile_run_takes_no_runtime() -> None:
    # The spec and the plugins it names (their identity is part of the run); never a runtime.
    parameters = inspect.signature(compile_run).parameters
    assert list(parameters) == ["spec", "plugins"]


@pytest.mark.parametrize("name", sorted(attrs.fields_dict(RuntimeConfig)))
def test_runtime_change_keeps_run_id(name: str) -> None:
    assert name in RUNTIME_CHANGES, f"add a changed value for RuntimeConfig.{name} to this test"
    spec = small_spec()
    baseline = compile_run(spec).run_id
    runtime = attrs.evolve(RuntimeConfig(), **{name: RUNTIME_CHANGES[name]})
    assert getattr(runtime, name) != getattr(RuntimeConfig(), name)
    assert classification(RuntimeConfig, name) is FieldClass.RUNTIME
    assert identity_view(runtime) == {}
    snapshot = RunSnapshot(run_id=baseline, created_at=0.0, spec=spec, runtime=runtime)
    assert compile_run(snapshot.spec).run_id == baseline


def test_rate_limit_fields_are_runtime() -> None:
    assert identity_view(RateLimit(requests_per_minute=1, tokens_per_minute=2)) == {}


def test_price_fields_are_runtime() -> None:
    assert identity_view(Price(input_per_1k=1.0, output_per_1k=2.0)) == {}


def test_endpoint_fields_are_runtime() -> None:
    endpoint = RUNTIME_CHANGES["endpoints"]["openai"]
    for name in attrs.fields_dict(Endpoint):
        assert getattr(endpoint, name) != getattr(Endpoint(), name), name
        assert classification(Endpoint, name) is FieldClass.RUNTIME
    assert identity_view(endpoint) == {}


def _with_dataset(spec: ExperimentSpec, **changes: Any) -> ExperimentSpec:
    return attrs.evolve(spec, datasets=(attrs.evolve(spec.datasets[0], **changes),))


PROVENANCE_CHANGES: dict[str, Callable[[ExperimentSpec], ExperimentSpec]] = {
    "name": lambda spec: attrs.evolve(spec, name="renamed"),
    "dataset.path": lambda spec: _with_dataset(spec, path="data/arith.jsonl"),
    "dataset.id_field": lambda spec: _with_dataset(spec, id_field="qid"),
    "dataset.expected_field": lambda spec: _with_dataset(spec, expected_field="target"),
    "dataset.limit": lambda spec: _with_dataset(spec, limit=2),
}


@pytest.mark.parametrize("change", PROVENANCE_CHANGES.values(), ids=list(PROVENANCE_CHANGES))
def test_provenance_change_keeps_run_id(change: Callable[[ExperimentSpec], ExperimentSpec]) -> None:
    spec = small_spec()
    changed = change(spec)
    assert changed != spec
    assert compile_run(changed).run_id == compile_run(spec).run_id


def test_provenance_is_not_in_the_identity_document() -> None:
    experiment = compile_run(small_spec()).identity["experiment"]
    assert "name" not in experiment
    assert set(experiment["datasets"][0]) == {"name", "cases"}


# --- identity changes alter run_id ------------------------------------------------------------


def _with_model(spec: ExperimentSpec, index: int, **changes: Any) -> ExperimentSpec:
    models = list(spec.models)
    models[index] = attrs.evolve(models[index], **changes)
    return attrs.evolve(spec, models=tuple(models))


def _with_params(spec: ExperimentSpec, index: int, **changes: Any) -> ExperimentSpec:
    return _with_model(spec, index, params=attrs.evolve(spec.models[index].params, **changes))


def _with_expected(spec: ExperimentSpec, expected: str) -> ExperimentSpec:
    dataset = spec.datasets[0]
    first = attrs.evolve(dataset.cases[0], expected=expected)
    return _with_dataset(spec, cases=(first, *dataset.cases[1:]))


IDENTITY_CHANGES: dict[str, Callable[[ExperimentSpec], ExperimentSpec]] = {
    "seed": lambda spec: attrs.evolve(spec, seed=8),
    "samples": lambda spec: attrs.evolve(spec, samples=3),
    "prompt template": lambda spec: attrs.evolve(
        spec, prompts=(attrs.evolve(spec.prompts[0], template="{{ a }}+{{ b }}"), spec.prompts[1])
    ),
    "prompt system": lambda spec: attrs.evolve(
        spec, prompts=(spec.prompts[0], attrs.evolve(spec.prompts[1], system="Be terse."))
    ),
    "model max_tokens": lambda spec: _with_params(spec, 0, max_tokens=512),
    "temperature": lambda spec: _with_params(spec, 1, temperature=0.8),
    "model id": lambda spec: _with_model(spec, 0, model="fake-1b"),
    "model options": lambda spec: _with_model(spec, 1, options={"skill": 0.6}),
    "model api": lambda spec: _with_model(spec, 0, api="completions"),
    "logprobs": lambda spec: _with_params(spec, 0, logprobs=0),
    "n": lambda spec: _with_params(spec, 1, n=2),
    "case expected": lambda spec: _with_expected(spec, "999"),
    "metric tolerance": lambda spec: attrs.evolve(
        spec, metrics=(spec.metrics[0], attrs.evolve(spec.metrics[1], tolerance=0.5))
    ),
    "parser name": lambda spec: attrs.evolve(spec, parser=ParserSpec(name="strip")),
    "added model": lambda spec: attrs.evolve(
        spec, models=(*spec.models, ModelSpec(name="m3", model="fake-3"))
    ),
}


@pytest.mark.parametrize("change", IDENTITY_CHANGES.values(), ids=list(IDENTITY_CHANGES))
def test_identity_change_alters_run_id(change: Callable[[ExperimentSpec], ExperimentSpec]) -> None:
    spec = small_spec()
    assert compile_run(change(spec)).run_id != compile_run(spec).run_id


@pytest.mark.parametrize(
    ("cls", "name"),
    [(cls, name) for cls, names in OMITTED_AT_DEFAULT.items() for name in sorted(names)],
)
def test_fields_added_later_are_left_out_only_at_their_default(cls: type, name: str) -> None:
    """ADR 0002 amendment 1: a field added after format 1 keeps older run_ids at its default."""
    assert classification(cls, name) is FieldClass.IDENTITY
    model = ModelSpec(name="m", model="x")
    rule = ValidationRule(stage=1, command="python3 sol.py")
    execution = MetricSpec(name="execution", rules=(rule,))
    values: dict[type, Any] = {
        ModelSpec: model,
        GenerationParams: model.params,
        ExperimentSpec: small_spec(),
        ParserSpec: ParserSpec(name="code") if name == "language" else ParserSpec(name="choice"),
        MetricSpec: MetricSpec(name="exact_match") if name == "rules" else execution,
    }
    values[PromptSpec] = PromptSpec(name="p", template="{{ q }}")
    if name == "params":  # only plugins take params
        values[ParserSpec] = ParserSpec(name="mylab.parsers:first_word")
        values[MetricSpec] = MetricSpec(name="mylab.metrics:f1")
        values[ReducerSpec] = ReducerSpec(name="mylab.reducers:last")
        values[VerdictSpec] = VerdictSpec(kind="mylab.judges:stars")
    checks = ValidationRule(stage=1, validator="mylab.checks:compiles")
    values[ValidationRule] = (
        ValidationRule(stage=1, command="true") if name == "validator" else checks
    )
    changes = {
        "api": "chat",
        "reducer": ReducerSpec(name="first"),
        "pass_at_k": (1,),
        "majority_at_k": (2,),
        "choices": 4,
        "choices_field": "options",
        "language": "python",
        "files": {"sol.py": "{answer}"},
        "skip_when": SkipWhen(command="true"),
        "limits": SandboxLimits(cpu_s=3),
        "judges": (JudgeSpec(name="q", models=(ModelSpec(name="j", model="y"),), template="x"),),
        "params": {"beta": 2},
        "few_shot": FewShotSpec(examples=DatasetSpec(name="e", cases=[Case(id="1")]), k=1),
    }
    value = values[cls]
    assert name not in identity_view(value)
    if name == "rules":
        changed = execution
    elif cls is ValidationRule and name == "validator":  # a rule runs a command or a validator
        changed = checks
    else:
        changed = attrs.evolve(value, **{name: changes.get(name, 1)})
    default = attrs.fields_dict(cls)[name].default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()
    assert getattr(changed, name) != default
    assert identity_view(changed)[name] == identity_view(getattr(changed, name))


def test_run_id_is_pinned() -> None:
    compiled = compile_run(small_spec())
    assert compiled.run_id == PINNED_RUN_ID
    assert compiled.run_id == digest(compiled.identity)
    assert compile_run(small_spec()).run_id == compiled.run_id
    assert compiled.outdated == ()


def test_a_run_compiled_with_older_parser_versions_still_loads() -> None:
    """Stored runs stay readable after a version bump, and say which versions they used."""
    stored = compile_stored(small_spec(), PINNED_V1_RUN_ID)
    assert stored is not None
    assert stored.run_id == PINNED_V1_RUN_ID
    assert stored.outdated == (
        "number v1 (now v2)",
        "exact_match v1 (now v2)",
        "numeric_match v1 (now v2)",
    )
    assert compile_stored(small_spec(), "0" * 64) is None


# --- canonical JSON and the trial-key fast path -----------------------------------------------


def test_canonical_json_is_key_order_independent() -> None:
    forward = {"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": "é"}}
    backward = {"a": {"x": "é", "y": [1, {"p": 3, "q": 2}]}, "b": 1}
    assert list(forward) != list(backward)
    assert canonical_json(forward) == canonical_json(backward)
    assert canonical_json(forward) == '{"a":{"x":"é","y":[1,{"p":3,"q":2}]},"b":1}'
    assert digest(forward) == digest(backward)


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"x": float("nan")})


def _awkward_spec() -> ExperimentSpec:
    """Quotes, backslashes, newlines, non-ASCII, nested options and float params."""
    return ExperimentSpec(
        seed=3,
        samples=3,
        datasets=(
            DatasetSpec(
                name="awkward",
                cases=(
                    Case(id="q1", fields={"text": 'say "hi"\\n\tthere', "n": 1.5}, expected="hi"),
                    Case(id="q2", fields={"text": "héllo — 世界 \u2028", "n": -0.1}, expected=None),
                ),
            ),
        ),
        models=(
            ModelSpec(
                name="a",
                model="m/a",
                provider="openai",
                params=GenerationParams(
                    temperature=0.1, top_p=0.95, max_tokens=7, stop=("\n", "#")
                ),
                options={"z": {"deep": [1, 2.5, None]}, "a": True},
            ),
            ModelSpec(name="b", model="m/b", params=GenerationParams(seed=41)),
        ),
        prompts=(
            PromptSpec(name="p1", template="{{ text }} / {{ n }} / {{ id }}"),
            PromptSpec(name="p2", template="Q: {{ text }}\n", system='System "{{ n }}"'),
        ),
    )


@pytest.mark.parametrize("spec", [small_spec(), _awkward_spec()], ids=["small", "awkward"])
def test_plan_trial_key_matches_reference_function(spec: ExperimentSpec) -> None:
    models = {model.name: model for model in spec.models}
    trials = list(plan(compile_run(spec)))
    assert len(trials) == compile_run(spec).trial_count
    for trial in trials:
        model = models[trial.model]
        seed = trial.request.params.seed
        assert seed is not None
        expected = planner.trial_key(
            model, trial.request.messages, model.params, trial.sample, seed
        )
        assert trial.trial_key == expected
        assert trial.request.trial_key == trial.trial_key


def test_a_run_stored_while_latency_was_identity_still_compiles_with_its_keys() -> None:
    # Before issue 9 the fake model's `latency_s` was part of run_id and trial keys.
    model = ModelSpec(name="m", model="fake-m", options={"skill": 0.5, "latency_s": 0.2})
    spec = small_spec(models=(model,))
    legacy = planner._compile(spec, {}, {})
    assert legacy.run_id != compile_run(spec).run_id
    assert (
        compile_run(spec).run_id
        == compile_run(small_spec(models=(attrs.evolve(model, options={"skill": 0.5}),))).run_id
    )

    stored = compile_stored(spec, legacy.run_id)

    assert stored is not None
    assert stored.run_id == legacy.run_id
    assert [t.trial_key for t in plan(stored)] == [t.trial_key for t in plan(legacy)]
    assert [t.trial_key for t in plan(stored)] != [t.trial_key for t in plan(compile_run(spec))]


def _one_case(spec: ExperimentSpec, case_id: str) -> ExperimentSpec:
    datasets = tuple(
        attrs.evolve(dataset, cases=tuple(c for c in dataset.cases if c.id == case_id))
        for dataset in spec.datasets
    )
    return attrs.evolve(spec, datasets=datasets)


@pytest.mark.parametrize("legacy", [False, True], ids=["today", "latency as identity"])
def test_a_case_compiled_alone_plans_the_trials_its_run_placed(legacy: bool) -> None:
    """`compile_placed` (ADR 0066): one case of a stored run compiled under the runtime options
    whose plan gives the trials the store placed for it, today's or a run's stored while the
    fake model's latency was identity; trials placed otherwise (another run's, a tampered key,
    one missing) give `None`."""
    model = ModelSpec(name="m", model="fake-m", options={"skill": 0.5, "latency_s": 0.2})
    spec = small_spec(models=(model,))
    whole = planner._compile(spec, {}, {}) if legacy else compile_run(spec)
    case_id = spec.datasets[0].cases[1].id
    trials = [trial for trial in plan(whole) if trial.case_id == case_id]
    placed = {trial.trial_id: trial.trial_key for trial in trials}
    assert len(placed) > 1

    alone = compile_placed(_one_case(spec, case_id), whole.run_id, placed)

    assert alone is not None
    assert alone.run_id == whole.run_id
    assert alone.runtime_options == whole.runtime_options
    assert list(plan(alone)) == trials  # every field of every trial: the request included
    tampered = {**placed, trials[0].trial_id: "0" * 32}
    missing = dict(list(placed.items())[1:])
    for wrong in (tampered, missing, {}):
        assert compile_placed(_one_case(spec, case_id), whole.run_id, wrong) is None


@pytest.mark.parametrize(
    "case",
    [
        Case(id="a", fields={"q": "1 + 1", "n": 2, "x": 1.5, "ok": True, "none": None}),
        Case(id="b", fields={"nested": {"k": [1, (2, 3)]}, "list": ["x"]}, expected="7"),
        Case(id="c"),
    ],
    ids=["scalars", "nested", "empty"],
)
def test_the_case_view_is_the_generic_identity_view(case: Case) -> None:
    # `identity_view` takes a shortcut for cases (most of compiling a large dataset).
    fast = identity_view(case)
    generic = _attrs_view(case, RUNTIME_OPTIONS)

    assert fast == generic
    assert canonical_json(fast) == canonical_json(generic)


def test_run_id_is_the_digest_of_the_identity_document() -> None:
    # compile splices the experiment's JSON, encoded once, into the document: same bytes.
    compiled = compile_run(small_spec())

    assert compiled.run_id == digest(compiled.identity)
    assert compile_stored(compiled.spec, compiled.run_id) == compiled


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({1: "x"}, "non-string key 1"),
        ({"x": float("inf")}, "x must be a finite number"),
        ({"x": {"y": float("nan")}}, "x.y must be a finite number"),
        ({"x": object()}, "x must be JSON data"),
    ],
)
def test_case_fields_must_be_json_data(fields: dict[Any, Any], problem: str) -> None:
    # Hashed into the identity; a row of plain values takes a shortcut past the full check.
    with pytest.raises(ValueError, match=problem):
        Case(id="a", fields=fields)


@pytest.mark.parametrize("marked_example", [False, True])
def test_the_spec_json_in_pieces_is_the_canonical_json_of_its_identity_view(
    marked_example: bool,
) -> None:
    spec = many_cases_spec(marked_example=marked_example)
    whole = canonical_json(identity_view(spec, RUNTIME_OPTIONS))

    pieces = list(spec_json(spec, RUNTIME_OPTIONS))

    assert "".join(pieces) == whole
    assert len(pieces) == (1 if marked_example else 11)  # 3 batches + 2 brackets per dataset
    compiled = compile_run(spec)
    assert compiled.run_id == digest(compiled.identity)


def _with_metrics(spec: ExperimentSpec, *names: str) -> ExperimentSpec:
    return attrs.evolve(spec, metrics=tuple(MetricSpec(name=name) for name in names))


@pytest.mark.parametrize("marked_example", [False, True])
def test_a_spec_compiled_beside_another_is_compiled_as_each_alone(marked_example: bool) -> None:
    # A derived replay compiles its config and, with the source run's metrics, the source's id.
    source = many_cases_spec(marked_example=marked_example)
    stored = compile_run(source)
    config = _with_metrics(source, "contains")

    ours, theirs = compile_beside(config, source, stored.run_id)

    assert ours == compile_run(config)
    assert theirs == compile_stored(source, stored.run_id) == stored
    assert compile_beside(config, source, "0" * 64) == (compile_run(config), None)
    # an older parser and metric version (`compile_stored` tries them) is found beside too
    base = small_spec()
    small, v1 = compile_beside(_with_metrics(base, "contains"), base, PINNED_V1_RUN_ID)
    assert small == compile_run(_with_metrics(base, "contains"))
    assert v1 == compile_stored(small_spec(), PINNED_V1_RUN_ID)
    assert v1 is not None
    assert v1.run_id == PINNED_V1_RUN_ID


def test_a_spec_compiled_beside_another_encodes_each_case_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = many_cases_spec()
    seen: list[str] = []
    view = identity_module._case_view

    def counted(case: Case) -> Any:
        seen.append(case.id)
        return view(case)

    monkeypatch.setattr(identity_module, "_case_view", counted)
    stored = compile_run(source)
    ids = [case.id for dataset in source.datasets for case in dataset.cases]
    assert sorted(id for id in seen if id in ids) == sorted(ids)
    seen.clear()

    _, theirs = compile_beside(_with_metrics(source, "contains"), source, stored.run_id)

    assert theirs == stored
    assert sorted(id for id in seen if id in ids) == sorted(ids)  # once, not once a spec


def test_a_spec_compiled_beside_another_hashes_their_shared_text_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADR 0122: a config and its source differing after their datasets (their metrics) have
    their text up to the difference, every case included, hashed once for both: the bytes
    hashed beside are those of one spec and the two tails."""
    import hashlib

    from themis.core import planner as planner_module

    fed: list[int] = []

    class Counted:
        def __init__(self, hashed: Any) -> None:
            self.hashed = hashed

        def update(self, data: bytes) -> None:
            fed.append(len(data))
            self.hashed.update(data)

        def copy(self) -> Counted:
            return Counted(self.hashed.copy())

        def hexdigest(self) -> str:
            return str(self.hashed.hexdigest())

    class Hashes:
        @staticmethod
        def sha256(data: bytes = b"") -> Counted:
            return Counted(hashlib.sha256(data))

    source = many_cases_spec()
    stored = compile_run(source)
    config = _with_metrics(source, "contains")
    monkeypatch.setattr(planner_module, "hashlib", Hashes)
    assert compile_run(config) == compile_run(config)
    fed.clear()
    alone = planner_module._experiments([config], RUNTIME_OPTIONS)
    once = sum(fed)
    fed.clear()
    ours, theirs = compile_beside(config, source, stored.run_id)
    assert (ours, theirs) == (compile_run(config), stored)
    fed.clear()
    both = planner_module._experiments([config, source], RUNTIME_OPTIONS)
    beside = sum(fed)
    assert once < beside < once * 1.2  # not twice the cases' text
    assert [found.hexdigest() for found in both] == [
        alone[0].hexdigest(),
        planner_module._experiments([source], RUNTIME_OPTIONS)[0].hexdigest(),
    ]


def test_a_spec_beside_one_that_cannot_compile_is_compiled_alone() -> None:
    source = small_spec()
    other = attrs.evolve(source, metrics=(MetricSpec(name="mylab.metrics:missing"),))

    ours, theirs = compile_beside(source, other, compile_run(source).run_id)

    assert ours == compile_run(source)
    assert theirs is None

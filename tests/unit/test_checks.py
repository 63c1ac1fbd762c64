"""The compile-time checks (`themis.core.checks`): each finds its problem, names the key and the
value, suggests the name meant, and a sound config has no problem."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from tests.unit.builders import small_spec
from themis.core import checks
from themis.core.checks import (
    PLANNING_NOTICE_TRIALS,
    RUNTIME_CHECKS,
    config_problems,
    config_warnings,
)
from themis.core.runtime import Price, RateLimit, RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)

PRICE = Price(input_per_1k=1.0, output_per_1k=2.0)


def problems(spec: ExperimentSpec | None = None, **runtime: object) -> list[str]:
    return [str(p) for p in config_problems(spec or small_spec(), RuntimeConfig(**runtime))]  # type: ignore[arg-type]


def test_a_sound_config_has_no_problem() -> None:
    assert problems() == []
    assert (
        problems(
            model_prices={"m1": PRICE, "fake-2": PRICE},
            context_windows={"fake-1": 4096},
            provider_rate_limits={"fake": RateLimit(requests_per_minute=60)},
            provider_concurrency={"fake": 2},
        )
        == []
    )


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [
        (
            {"model_prices": {"fake-3": PRICE}},
            "runtime.model_prices: no model is named 'fake-3' (did you mean 'fake-2'?)",
        ),
        (
            {"context_windows": {"gpt-4o": 8}},
            "runtime.context_windows: no model is named 'gpt-4o' "
            "(known: 'fake-1', 'fake-2', 'm1', 'm2')",
        ),
        (
            {"provider_rate_limits": {"fak": RateLimit()}},
            "runtime.provider_rate_limits: no provider is named 'fak' (did you mean 'fake'?)",
        ),
        (
            {"provider_concurrency": {"openai": 3}},
            "runtime.provider_concurrency: no provider is named 'openai' (known: 'fake')",
        ),
    ],
)
def test_every_runtime_table_key_names_a_model_or_provider(
    runtime: dict[str, object], expected: str
) -> None:
    assert problems(**runtime) == [expected]
    # the runtime checks alone (as for a run's runtime changes) find it too
    found = config_problems(small_spec(), RuntimeConfig(**runtime), RUNTIME_CHECKS)  # type: ignore[arg-type]
    assert [str(problem) for problem in found] == [expected]


def test_a_file_dataset_needs_its_expected_field_in_some_row() -> None:
    rows = (Case(id="1", fields={"q": "x", "answer": "1"}), Case(id="2", fields={"q": "y"}))
    dataset = DatasetSpec(name="d", path="d.jsonl", expected_field="answr", cases=rows)
    spec = small_spec(datasets=(dataset,), prompts=(PromptSpec(name="p", template="{{ q }}"),))
    assert problems(spec) == [
        "datasets[0].expected_field: no column of d.jsonl is named 'answr' (did you mean 'answer'?)"
    ]
    # one row having it is enough (a blank answer is the dataset's business)
    assert not problems(
        attrs.evolve(spec, datasets=(attrs.evolve(dataset, expected_field="answer"),))
    )


@pytest.mark.parametrize(
    ("template", "system", "expected"),
    [
        (
            "{{ a }} + {{ bb }}",
            None,
            "prompts[0]: prompt 'p': no field of case 'c0' of dataset 'arith' is named 'bb' "
            "(did you mean 'b'?)",
        ),
        ("{{ a // 0 }}", None, "prompts[0]: prompt 'p', case 'c0': ZeroDivisionError: "),
        ("{{ a.real.nope }}", None, "prompts[0]: prompt 'p', case 'c0': 'int object' has no"),
        ("{{ a + 'x' }}", None, "prompts[0]: prompt 'p', case 'c0': TypeError: "),
        ("{{ a + }}", None, "prompts[0]: prompt 'p': template syntax error: "),
        (
            "{{ '' if a == 0 else a }}",
            None,
            "prompts[0]: prompt 'p': its template renders empty for case 'c0' of dataset 'arith'",
        ),
        (
            "{{ a }}",
            "{{ ' ' }}",
            "prompts[0]: prompt 'p': its system message renders empty for case 'c0' of dataset "
            "'arith'",
        ),
        (
            "{{ a }}",
            "You are {{ persona }}.",
            "prompts[0]: prompt 'p': no field of case 'c0' of dataset 'arith' is named 'persona'",
        ),
    ],
)
def test_every_prompt_renders_for_every_case(
    template: str, system: str | None, expected: str
) -> None:
    spec = small_spec(prompts=(PromptSpec(name="p", template=template, system=system),))
    (problem,) = problems(spec)
    assert problem.startswith(expected)


def _renders_counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the cases the check renders, in order, as it renders them."""
    rendered: list[str] = []
    real_render = checks.render

    def counted(prompt: PromptSpec, case: Case) -> Any:
        rendered.append(case.id)
        return real_render(prompt, case)

    monkeypatch.setattr(checks, "render", counted)
    return rendered


def test_a_plain_prompt_is_not_rendered_for_the_cases_holding_its_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It renders visibly for them whatever their values (ADR 0074); a case lacking a field
    # is still rendered, and named.
    rendered = _renders_counted(monkeypatch)
    cases = [Case(id=str(i), fields={"n": i}) for i in range(5)] + [Case(id="x", fields={})]
    spec = small_spec(
        datasets=(DatasetSpec(name="d", cases=tuple(cases)),),
        prompts=(PromptSpec(name="p", template="What is {{ n }}?"),),
    )
    (problem,) = problems(spec)
    assert problem.startswith("prompts[0]: prompt 'p': no field of case 'x' of dataset 'd'")
    assert rendered == ["x"]


def test_a_bare_field_template_renders_only_the_cases_whose_value_may_be_blank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A template of fields alone (`{{ question }}`) renders visibly for a case whose value is a
    string with visible text: only the others are rendered (ADR 0086), and a blank one is still
    named."""
    rendered = _renders_counted(monkeypatch)
    values: list[Any] = ["What is 1 + 1?", " x ", 7, None, ["a"], "", " \u2003\n", "ok"]
    cases = tuple(Case(id=str(i), fields={"q": value}) for i, value in enumerate(values))
    spec = small_spec(
        datasets=(DatasetSpec(name="d", cases=cases),),
        prompts=(PromptSpec(name="p", template="{{ q }}", system="{{ q }}{{ hint }} "),),
    )
    (problem,) = problems(spec)
    assert problem == (
        "prompts[0]: prompt 'p': no field of case '0' of dataset 'd' is named 'hint' (known: 'q')"
    )
    assert rendered == ["0"]
    rendered.clear()
    spec = attrs.evolve(spec, prompts=(PromptSpec(name="p", template="{{ q }}  {{ q }}"),))
    (problem,) = problems(spec)
    assert (
        problem == "prompts[0]: prompt 'p': its template renders empty for case '5' of dataset 'd'"
    )
    assert rendered == ["2", "3", "4", "5"]  # 7, None, a list: rendered; "" found blank


@pytest.mark.parametrize("part", [1, 3, 4096])
def test_a_dataset_whose_every_case_shows_is_told_a_field_at_a_time(
    part: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0122: a bare field template over cases that each hold it as visible text is told
    over the fields at once, no case looked at on its own; one case that may not show has the
    loop tell them case by case, the same problem named, at any part size."""
    monkeypatch.setattr(checks, "_CHECKED_PART", part)
    rendered = _renders_counted(monkeypatch)
    looked: list[object] = []
    real = checks._shows_visibly

    def counted(fields: Any, through: Any) -> bool:
        looked.append(fields)
        return bool(real(fields, through))

    monkeypatch.setattr(checks, "_shows_visibly", counted)
    cases = tuple(Case(id=str(i), fields={"q": f"question {i}", "a": i}) for i in range(7))
    prompt = PromptSpec(name="p", template="{{ q }}", system="{{ a }} says")
    spec = small_spec(datasets=(DatasetSpec(name="d", cases=cases),), prompts=(prompt,))
    assert problems(spec) == []
    assert (rendered, looked) == ([], [])
    blank = (*cases[:5], Case(id="5", fields={"q": " ", "a": 5}), cases[6])
    spec = small_spec(datasets=(DatasetSpec(name="d", cases=blank),), prompts=(prompt,))
    (problem,) = problems(spec)
    assert (
        problem == "prompts[0]: prompt 'p': its template renders empty for case '5' of dataset 'd'"
    )
    assert rendered == ["5"]
    assert len(looked) == 6
    rendered.clear()
    looked.clear()
    missing = (*cases[:4], Case(id="4", fields={"a": 4}), *cases[5:])
    spec = small_spec(datasets=(DatasetSpec(name="d", cases=missing),), prompts=(prompt,))
    (problem,) = problems(spec)
    assert problem.startswith("prompts[0]: prompt 'p': no field of case '4' of dataset 'd'")


def test_only_the_first_failing_case_of_a_prompt_is_reported() -> None:
    dataset = DatasetSpec(
        name="d", cases=tuple(Case(id=str(i), fields={"n": i % 2}) for i in range(10))
    )
    spec = small_spec(
        datasets=(dataset,),
        prompts=(
            PromptSpec(name="ok", template="{{ n }}"),
            PromptSpec(name="bad", template="{{ 1 // n }}"),
        ),
    )
    assert problems(spec) == [
        "prompts[1]: prompt 'bad', case '0': ZeroDivisionError: integer division or modulo by zero"
    ]


def test_a_missing_field_that_a_filter_defaults_is_fine() -> None:
    prompt = PromptSpec(
        name="p", template="{{ a }}{{ hint | default('') }}{% for i in range(2) %}.{% endfor %}"
    )
    assert problems(small_spec(prompts=(prompt,))) == []


@pytest.mark.parametrize(
    ("parser", "expected"),
    [
        (ParserSpec(name="regex"), "parser.pattern: missing: the 'regex' parser needs a pattern"),
        (
            ParserSpec(name="regex", pattern="(\\d+"),
            "parser.pattern: invalid regular expression '(\\\\d+': missing ), unterminated "
            "subpattern at position 0",
        ),
        (
            ParserSpec(name="regex", pattern="(\\d+)", group=2),
            "parser.group: pattern '(\\\\d+)' has 1 group(s); there is no group 2",
        ),
        (
            ParserSpec(name="regex", pattern="\\d+", group=-1),
            "parser.group: pattern '\\\\d+' has 0 group(s); there is no group -1",
        ),
        (
            ParserSpec(name="strip", group=3),
            "parser.group: the 'strip' parser does not use it (got 3); only 'regex' does",
        ),
    ],
)
def test_parser_settings_are_checked(parser: ParserSpec, expected: str) -> None:
    assert problems(small_spec(parser=parser)) == [expected]


def test_a_regex_with_group_zero_or_its_last_group_is_fine() -> None:
    assert problems(small_spec(parser=ParserSpec(name="regex", pattern="a(b)(c)", group=2))) == []
    assert problems(small_spec(parser=ParserSpec(name="regex", pattern="abc", group=0))) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"temperature": -0.1}, "models[0].params.temperature: must be >= 0, got -0.1"),
        ({"top_p": 0.0}, "models[0].params.top_p: must be within (0, 1], got 0.0"),
        ({"top_p": 1.01}, "models[0].params.top_p: must be within (0, 1], got 1.01"),
    ],
)
def test_sampling_parameters_are_bounded(change: dict[str, float], expected: str) -> None:
    model = ModelSpec(name="m", model="fake-m", params=GenerationParams(**change))  # type: ignore[arg-type]
    assert problems(small_spec(models=(model,))) == [expected]


def test_samples_and_tolerances_are_bounded() -> None:
    assert problems(small_spec(samples=10_000)) == []
    assert problems(small_spec(samples=10_001)) == ["samples: must be at most 10,000, got 10,001"]
    metric = MetricSpec(name="numeric_match", tolerance=-1e-3)
    assert problems(small_spec(metrics=(metric,))) == [
        "metrics[0].tolerance: must be >= 0, got -0.001"
    ]


def test_every_problem_is_reported_in_check_order() -> None:
    spec = small_spec(samples=20_000, parser=ParserSpec(name="regex", pattern="("))
    assert [p.key for p in config_problems(spec, RuntimeConfig(provider_concurrency={"x": 1}))] == [
        "samples",
        "parser.pattern",
        "runtime.provider_concurrency",
    ]


def test_a_very_large_run_is_announced_with_its_trial_count() -> None:
    assert config_warnings(small_spec()) == ()
    samples = PLANNING_NOTICE_TRIALS // 8 + 1  # 2 cases x 2 models x 2 prompts
    (warning,) = config_warnings(small_spec(samples=samples))
    assert warning.startswith(
        f"this run plans {8 * samples:,} trials (2 cases x 2 models x 2 prompts x {samples:,} "
        "samples)"
    )


def test_the_choice_parser_needs_every_case_to_give_its_number_of_choices() -> None:
    rows = (
        Case(id="q0", fields={"a": 1, "b": 2, "choices": ["x", "y", "z"]}),
        Case(id="q1", fields={"a": 1, "b": 2, "choice": ["x", "y"]}),
    )
    spec = small_spec(
        datasets=(DatasetSpec(name="quiz", cases=rows),), parser=ParserSpec(name="choice")
    )
    assert problems(spec) == [
        "parser.choices_field: case 'q1' of dataset 'quiz' has no field 'choices' holding its "
        "choices (did you mean 'choice'?): a list of 2 to 26 options, or their count; set "
        "parser.choices_field, or parser.choices for every case"
    ]
    assert problems(attrs.evolve(spec, parser=ParserSpec(name="choice", choices=4))) == []

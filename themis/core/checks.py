"""Compile-time checks of a config: every name it refers to and every value it sets.

One mechanism for all of them: a check is a function of the experiment and its runtime that
yields `Problem`s (the key to fix and a one-line message naming the value, with a did-you-mean
when a name is misspelled). `config_problems` runs them before a store is created or a model is
called, and the application reports the first problem as a `ConfigError` naming the file.
Stored runs are not checked again: they are read as stored (a trial whose prompt does not render
or whose answer cannot be parsed fails with its reason). docs/reference/config-checks.md lists
every check.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from attrs import fields, frozen

from themis.core.execution import template_problem
from themis.core.judging import all_models, judge_messages
from themis.core.planner import ANSWER_FIELD
from themis.core.plugins import is_plugin_name
from themis.core.prompting import (
    PromptError,
    render,
    template_fields,
    visible_through_fields,
)
from themis.core.runtime import RuntimeConfig
from themis.core.scoring import choice_count
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    JudgeSpec,
    ParserSpec,
    PromptSpec,
    is_pure_metric,
)
from themis.core.validation import MAX_CHOICES, close_name, unknown_name

__all__ = [
    "ALL_CHECKS",
    "MAX_SAMPLES",
    "PLANNING_NOTICE_TRIALS",
    "RUNTIME_CHECKS",
    "Problem",
    "config_problems",
    "config_warnings",
]

MAX_SAMPLES = 10_000  # samples per case, model and prompt; more is a typo, not an experiment
PLANNING_NOTICE_TRIALS = 1_000_000  # a run planning more is announced: its planning takes a while
# The parser settings each builtin parser reads; any other setting away from its default is a
# mistake (it would be silently ignored).
PARSER_SETTINGS: dict[str, frozenset[str]] = {
    "regex": frozenset({"pattern", "group"}),
    "choice": frozenset({"choices", "choices_field"}),
    "code": frozenset({"language"}),
}


@frozen
class Problem:
    """One thing to fix: `key` is where in the config, `message` says what, naming the value."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


Check = Callable[[ExperimentSpec, RuntimeConfig], Iterator[Problem]]


def _model_tables(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """`model_prices` and `context_windows` are keyed by a model's label or its model id."""
    models = all_models(spec)
    names = [model.name for model in models] + [model.model for model in models]
    for table in ("model_prices", "context_windows"):
        for key in getattr(runtime, table):
            if key not in names:
                yield Problem(f"runtime.{table}", unknown_name("model", key, names))


def _provider_tables(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """Provider limits and endpoints are keyed by the providers the models name."""
    providers = [model.provider for model in all_models(spec)]
    for table in ("provider_rate_limits", "provider_concurrency", "endpoints"):
        for key in getattr(runtime, table):
            if key not in providers:
                yield Problem(f"runtime.{table}", unknown_name("provider", key, providers))


def _expected_fields(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """A file's `expected_field` must be a column some row has, or every trial scores 0 (unless
    no metric compares with an expected answer: the execution metric runs the answer instead)."""
    if not any(is_pure_metric(metric.name) for metric in spec.metrics):
        return
    for index, dataset in enumerate(spec.datasets):
        if dataset.path is None or any(dataset.expected_field in c.fields for c in dataset.cases):
            continue
        columns = _columns(dataset)
        kind = f"column of {dataset.path}"
        yield Problem(
            f"datasets[{index}].expected_field", unknown_name(kind, dataset.expected_field, columns)
        )


def _columns(dataset: DatasetSpec) -> set[str]:
    columns: set[str] = set()
    for case in dataset.cases:
        columns.update(case.fields)
    return columns


def _prompts(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """Each prompt renders, and renders to something, for every case (the first failure each)."""
    for index, prompt in enumerate(spec.prompts):
        problem = _prompt_problem(prompt, spec.datasets)
        if problem is not None:
            yield Problem(f"prompts[{index}]", problem)


def _prompt_problem(prompt: PromptSpec, datasets: Iterable[DatasetSpec]) -> str | None:
    try:
        needed = template_fields(prompt) - {"id"}
    except PromptError as error:
        return str(error)
    # A plain template renders for every case holding its fields, visibly when it has visible
    # text or shows a value that is a string not blank: those cases are not rendered here (a run
    # of 10,000 cases compiled ~20 ms sooner, ADR 0074; a bare `{{ question }}`, ADR 0086).
    through = visible_through_fields(prompt)
    for dataset in datasets:
        if through is not None and _all_show(dataset.cases, needed, through):
            continue  # every case holds the fields, each showing visible text: none rendered
        for case in dataset.cases:
            fields = case.fields
            if (
                through is not None
                and needed <= fields.keys()
                and (not through or _shows_visibly(fields, through))
            ):
                continue
            try:
                messages = render(prompt, case)
            except PromptError as error:
                missing = needed - case.fields.keys()
                if not missing:
                    return str(error)
                name = sorted(missing)[0]  # most likely a misspelled field: say which is meant
                kind = f"field of case {case.id!r} of dataset {dataset.name!r}"
                return f"prompt {prompt.name!r}: {unknown_name(kind, name, case.fields)}"
            for message in messages:
                if not message.content.strip():
                    part = "system message" if message.role == "system" else "template"
                    return (
                        f"prompt {prompt.name!r}: its {part} renders empty for case {case.id!r} "
                        f"of dataset {dataset.name!r}"
                    )
    return None


def _all_show(
    cases: Iterable[Case], needed: frozenset[str], through: tuple[tuple[str, ...], ...]
) -> bool:
    """Whether every one of `cases` holds the `needed` fields and, for each of `through`'s name
    lists of one name, a string with visible text under it (`_shows_visibly`, a list of one
    name), told a field at a time over `_CHECKED_PART` cases at once (`map` in C): ~0.1 µs a
    case where a step of the loop over them takes ~0.35 (ADR 0122). `False` also for a list of
    several names: the loop then tells case by case, as before."""
    if any(len(names) != 1 for names in through):
        return False
    found = iter(cases)
    while part := [case.fields for case in itertools.islice(found, _CHECKED_PART)]:
        # (`Case` makes its fields a `dict`: any other mapping is told case by case)
        if not _DICT.issuperset(map(type, part)):
            return False
        held: list[dict[str, Any]] = part  # type: ignore[assignment]
        if not all(map(operator.le, itertools.repeat(needed), map(dict.keys, held))):
            return False
        for (name,) in through:
            values: list[Any] = list(map(dict.get, held, itertools.repeat(name)))
            if not _STR.issuperset(map(type, values)) or not all(map(str.strip, values)):
                return False
    return True


# Cases whose fields `_all_show` reads at once; `dict` alone, `str` alone.
_CHECKED_PART = 4096
_DICT, _STR = frozenset({dict}), frozenset({str})


def _shows_visibly(fields: Mapping[str, object], through: tuple[tuple[str, ...], ...]) -> bool:
    """Whether, for each of `through`'s name lists, one name's value in `fields` is a string with
    visible text (rendered as itself); any other value is left for the check to render."""
    for names in through:
        for name in names:
            value = fields.get(name)
            if type(value) is str and value.strip():
                break
        else:
            return False
    return True


def _parser(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """The parser's settings: a valid regex with the group it names; no setting it ignores."""
    parser = spec.parser
    used = PARSER_SETTINGS.get(parser.name, frozenset())
    if is_plugin_name(parser.name):
        used = frozenset({"params"})
    for setting in fields(ParserSpec):
        value = getattr(parser, setting.name)
        if setting.name in ("name", "params"):  # a plugin's params: checked as it resolves
            continue
        if setting.name not in used and value != setting.default:
            yield Problem(
                f"parser.{setting.name}",
                f"the {parser.name!r} parser does not use it (got {value!r}); "
                f"only {_users(setting.name)} does",
            )
    if parser.name == "regex":
        yield from _regex(parser)
    if parser.name == "choice" and parser.choices is None:
        yield from _choice_counts(parser, spec.datasets)


def _users(setting: str) -> str:
    users = [name for name, used in PARSER_SETTINGS.items() if setting in used]
    return " or ".join(repr(name) for name in users) or "no parser"


def _regex(parser: ParserSpec) -> Iterator[Problem]:
    if parser.pattern is None:
        yield Problem("parser.pattern", "missing: the 'regex' parser needs a pattern")
        return
    try:
        compiled = re.compile(parser.pattern, re.DOTALL)
    except re.error as error:
        yield Problem("parser.pattern", f"invalid regular expression {parser.pattern!r}: {error}")
        return
    if not 0 <= parser.group <= compiled.groups:
        yield Problem(
            "parser.group",
            f"pattern {parser.pattern!r} has {compiled.groups} group(s); "
            f"there is no group {parser.group}",
        )


def _choice_counts(parser: ParserSpec, datasets: Iterable[DatasetSpec]) -> Iterator[Problem]:
    """Without a fixed `choices`, every case must say how many choices it has."""
    field = parser.choices_field
    for dataset in datasets:
        for case in dataset.cases:
            if choice_count(parser, case) is not None:
                continue
            where = f"case {case.id!r} of dataset {dataset.name!r}"
            if field in case.fields:
                found = f"{where} has {field!r} = {case.fields[field]!r}, not its choices"
            else:
                close = close_name(field, case.fields)
                hint = f" (did you mean {close!r}?)" if close else ""
                found = f"{where} has no field {field!r} holding its choices{hint}"
            yield Problem(
                "parser.choices_field",
                f"{found}: a list of 2 to {MAX_CHOICES} options, or their count; set "
                "parser.choices_field, or parser.choices for every case",
            )
            return


def _values(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """Numbers that parse but make no sense: sampling parameters, tolerances, sample counts."""
    if spec.samples > MAX_SAMPLES:
        yield Problem("samples", f"must be at most {MAX_SAMPLES:,}, got {spec.samples:,}")
    for index, model in enumerate(spec.models):
        params = model.params
        if params.temperature < 0:
            yield Problem(
                f"models[{index}].params.temperature", f"must be >= 0, got {params.temperature}"
            )
        if params.top_p is not None and not 0 < params.top_p <= 1:
            yield Problem(
                f"models[{index}].params.top_p", f"must be within (0, 1], got {params.top_p}"
            )
    for index, metric in enumerate(spec.metrics):
        if metric.tolerance < 0:
            yield Problem(f"metrics[{index}].tolerance", f"must be >= 0, got {metric.tolerance}")


def _executions(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """An execution metric's files and commands render for every case (the first failure)."""
    for index, metric in enumerate(spec.metrics):
        if metric.name != "execution":
            continue
        for dataset in spec.datasets:
            for case in dataset.cases:
                problem = template_problem(metric, case.fields.keys())
                if problem is not None:
                    key, _, message = problem.partition(": ")
                    where = f"case {case.id!r} of dataset {dataset.name!r}"
                    yield Problem(f"metrics[{index}].{key}", f"{message} ({where})")
                    return


def _answer_fields(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """A scripted model's `answer_field` is a field of every case."""
    for index, model in enumerate(spec.models):
        name = model.options.get(ANSWER_FIELD)
        if name is None:
            continue
        for dataset in spec.datasets:
            for case in dataset.cases:
                if not isinstance(name, str) or name not in case.fields:
                    kind = f"field of case {case.id!r} of dataset {dataset.name!r}"
                    yield Problem(
                        f"models[{index}].options.{ANSWER_FIELD}",
                        unknown_name(kind, str(name), case.fields),
                    )
                    return


_JUDGE_NAMES = frozenset({"candidate", "candidate_a", "candidate_b", "reference", "rubric", "id"})


def _judges(spec: ExperimentSpec, runtime: RuntimeConfig) -> Iterator[Problem]:
    """Each judge's template renders for every case, its verdict pattern has a group, its
    judge models' parameters make sense, and its human column is a field of every case."""
    for index, judge in enumerate(spec.judges):
        where = f"judges[{index}]"
        if judge.verdict.kind != "json":
            try:
                groups = re.compile(judge.verdict.pattern).groups
            except re.error as error:
                yield Problem(f"{where}.verdict.pattern", f"invalid regular expression: {error}")
                groups = 1
            if groups < 1:
                yield Problem(f"{where}.verdict.pattern", "needs a group: the verdict it captures")
        for number, model in enumerate(judge.models):
            if model.params.temperature < 0:
                yield Problem(
                    f"{where}.models[{number}].params.temperature",
                    f"must be >= 0, got {model.params.temperature}",
                )
        texts = ("A", "B") if judge.pairwise else ("A",)
        problem = _judge_problem(judge, spec.datasets, texts)
        if problem is not None:
            yield Problem(f"{where}.template", problem)
        if judge.human_field is not None:
            for dataset in spec.datasets:
                missing = next(
                    (case for case in dataset.cases if judge.human_field not in case.fields), None
                )
                if missing is not None:
                    kind = f"field of case {missing.id!r} of dataset {dataset.name!r}"
                    yield Problem(
                        f"{where}.human_field",
                        unknown_name(kind, judge.human_field, missing.fields),
                    )
                    break


def _judge_problem(
    judge: JudgeSpec, datasets: Iterable[DatasetSpec], texts: tuple[str, ...]
) -> str | None:
    needed: set[str] = set()
    for source in (judge.template, judge.system or ""):
        try:
            needed |= template_fields(PromptSpec(name=judge.name, template=source or "-"))
        except PromptError as error:
            return str(error)
    needed -= _JUDGE_NAMES
    for dataset in datasets:
        for case in dataset.cases:
            try:
                judge_messages(judge, case, texts)
            except PromptError as error:
                missing = needed - case.fields.keys()
                if not missing:
                    return str(error)
                kind = f"field of case {case.id!r} of dataset {dataset.name!r}"
                return (
                    f"judge {judge.name!r}: {unknown_name(kind, sorted(missing)[0], case.fields)}"
                )
    return None


# Cheap checks first; the prompt check renders every case once per prompt.
RUNTIME_CHECKS: tuple[Check, ...] = (_model_tables, _provider_tables)
ALL_CHECKS: tuple[Check, ...] = (
    _values,
    _parser,
    *RUNTIME_CHECKS,
    _expected_fields,
    _prompts,
    _executions,
    _answer_fields,
    _judges,
)


def config_problems(
    spec: ExperimentSpec, runtime: RuntimeConfig, checks: Iterable[Check] = ALL_CHECKS
) -> tuple[Problem, ...]:
    """Every problem `checks` find, in order; empty when the config is fine."""
    return tuple(problem for check in checks for problem in check(spec, runtime))


def config_warnings(spec: ExperimentSpec) -> tuple[str, ...]:
    """Things worth saying before a run is planned, though not wrong: a very large run."""
    cases = sum(len(dataset.cases) for dataset in spec.datasets)
    trials = cases * len(spec.models) * len(spec.prompts) * spec.samples
    if trials <= PLANNING_NOTICE_TRIALS:
        return ()
    return (
        f"this run plans {trials:,} trials ({cases:,} cases x {len(spec.models)} models x "
        f"{len(spec.prompts)} prompts x {spec.samples:,} samples); planning them takes a while",
    )

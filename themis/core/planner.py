"""Compile an experiment to a stable `run_id` and plan its trials lazily and deterministically.

A trial is one (dataset case, model, prompt variant, sample). Its `trial_key` addresses the
generation by content (model identity, rendered request, parameters, sample index, seed), so the
same request is the same key in any run of a store; its `trial_id` names the trial's place in
this run (two cases that render identically share a generation but are scored separately).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, MutableSequence, Sequence
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import attrs
from attrs import field, frozen

from themis.core.builtins import builtin_plugins
from themis.core.case_pieces import marked
from themis.core.compiled_facts import outdated_versions
from themis.core.errors import ModelCallForbidden, PluginError, ThemisError
from themis.core.identity import (
    LEGACY_OPTIONS,
    RUNTIME_OPTIONS,
    RuntimeOptions,
    canonical_json,
    canonical_text,
    digest,
    identity_options,
    identity_view,
    short_digest,
    specs_json,
    text_digest,
)
from themis.core.key_index import HexStrings
from themis.core.large_run import is_large_run
from themis.core.plugins import PluginKind, PluginRegistry, is_plugin_name
from themis.core.prompting import Message, PromptError, rendered_texts
from themis.core.scoring import METRIC_VERSIONS, PARSER_VERSIONS, choice_count
from themis.core.spec import Case, ExperimentSpec, GenerationParams, ModelSpec, PromptSpec
from themis.core.stages import EXECUTED_STAGES, Stage
from themis.core.state import RunState

IDENTITY_FORMAT = 1  # bump when the identity document's shape changes
UNRENDERABLE = "unrenderable"  # the `error_kind` of a trial whose prompt does not render


@frozen
class ModelRequest:
    """Everything a model adapter needs for one call.

    `reference` is the case's expected answer; it is never sent to an endpoint, and exists so
    that scripted models can answer right with a given probability. `api` is the model's
    `ModelSpec.api` (`None`: the provider's own API).
    """

    trial_key: str
    provider: str
    model: str
    messages: tuple[Message, ...]
    params: GenerationParams
    options: Mapping[str, Any]
    sample: int
    reference: str | None = None
    api: str | None = None

    @classmethod
    def of_model(
        cls,
        model: ModelSpec,
        trial_key: str,
        messages: tuple[Message, ...],
        params: GenerationParams,
        sample: int,
        reference: str | None = None,
    ) -> ModelRequest:
        """The request for one call of `model` (its provider, model name, options and API)."""
        return cls(
            trial_key=trial_key,
            provider=model.provider,
            model=model.model,
            messages=messages,
            params=params,
            options=model.options,
            sample=sample,
            reference=reference,
            api=model.api,
        )


@frozen
class TrialPlan:
    """One unit of work: which case, model, prompt and sample, and the request to send."""

    trial_id: str
    trial_key: str
    dataset: str
    case_id: str
    model: str
    prompt: str
    sample: int
    expected: str | None
    # The request (`request`); `None` in a replay's plan (`replay_plan`), which makes no call.
    _request: ModelRequest | None
    choices: int | None = None  # the case's number of choices, for the `choice` parser
    # Why the trial cannot be attempted (its prompt does not render for its case), else None: such
    # a trial fails with this reason and no call. The checks refuse it in a new config; a stored
    # run may still hold one, and must stay readable.
    problem: str | None = None

    @property
    def request(self) -> ModelRequest:
        """The call to make for the trial; a replay's trial has none (it never calls)."""
        request = self._request
        if request is None:
            raise ModelCallForbidden(
                f"replay tried to call model {self.model!r} (trial {self.trial_key[:12]}); "
                "replays never call models"
            )
        return request


@frozen
class CompiledRun:
    """An experiment with its identity fixed: the spec, `run_id`, and the implementations part
    of its identity document (`identity` builds the whole document again when asked: its
    experiment part holds a view of every case, too big to keep through a large run)."""

    run_id: str
    spec: ExperimentSpec
    implementations: Mapping[str, Any]
    # Which model options are runtime in this run's identity and trial keys (a run stored before
    # an option became runtime keeps it as identity).
    runtime_options: RuntimeOptions = RUNTIME_OPTIONS
    # The built-ins and the plugins this run's parser, metrics, providers and loaders name.
    plugins: PluginRegistry = field(factory=builtin_plugins, eq=False)

    @property
    def identity(self) -> Mapping[str, Any]:
        """The identity document `run_id` is the digest of."""
        return {
            "format": IDENTITY_FORMAT,
            "experiment": identity_view(self.spec, self.runtime_options),
            "implementations": self.implementations,
        }

    @property
    def builtin_versions(self) -> dict[str, int]:
        """The version of each built-in parser and metric this run was compiled with."""
        implementations = self.implementations
        return {
            name: version
            for table in (implementations["parser"], implementations["metrics"])
            for name, version in table.items()
            if isinstance(version, int)
        }

    @property
    def outdated(self) -> tuple[str, ...]:
        """Built-in parsers and metrics this run was compiled with at an older version than
        today's (a plugin's version is part of the run: another version is another run)."""
        return outdated_versions(self.builtin_versions)

    @property
    def trial_count(self) -> int:
        return self.spec.trial_count


def compile_run(spec: ExperimentSpec, plugins: PluginRegistry | None = None) -> CompiledRun:
    """Fix the run's identity. Checks nothing: a stored run must always compile as it was stored;
    a new config is checked first (`themis.core.checks`). `plugins` must hold every plugin the
    spec names (`themis.app.plugins.resolve_plugins` finds them); default: the built-ins."""
    return _compile(spec, {}, plugins=plugins or builtin_plugins())


def _plugin_identity(
    plugins: PluginRegistry, kind: PluginKind, name: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    found = plugins.get(kind, name)
    if found is None:
        raise PluginError(f"{kind} plugin {name!r} is not loaded")
    return found.identity(params)


def _implementations(
    spec: ExperimentSpec, versions: Mapping[str, int], plugins: PluginRegistry
) -> dict[str, Any]:
    """Which implementation of each parser, metric (and plugin provider and loader) runs: a
    built-in's version, or a plugin's identity. Sections without plugins keep their old shape."""
    current = {**PARSER_VERSIONS, **METRIC_VERSIONS, **versions}

    def entry(kind: PluginKind, name: str, params: Mapping[str, Any]) -> Any:
        if is_plugin_name(name):
            return _plugin_identity(plugins, kind, name, params)
        return current[name]

    parser = spec.parser
    table: dict[str, Any] = {
        "parser": {parser.name: entry(PluginKind.PARSER, parser.name, parser.params)},
        "metrics": {m.name: entry(PluginKind.METRIC, m.name, m.params) for m in spec.metrics},
    }
    reducer = spec.reducer
    if reducer is not None and is_plugin_name(reducer.name):
        table["reducer"] = {
            reducer.name: _plugin_identity(
                plugins, PluginKind.REDUCER, reducer.name, reducer.params
            )
        }
    judge_models = (model for judge in spec.judges for model in judge.models)
    models = {
        m.provider: _plugin_identity(plugins, PluginKind.MODEL, m.provider, {})
        for m in (*spec.models, *judge_models)
        if is_plugin_name(m.provider)
    }
    if models:
        table["models"] = models
    readers = {
        j.name: _plugin_identity(plugins, PluginKind.JUDGE, j.verdict.kind, j.verdict.params)
        for j in spec.judges
        if is_plugin_name(j.verdict.kind)
    }
    if readers:
        table["judges"] = readers
    validators = {
        f"{m.name}.rules[{i}]": _plugin_identity(
            plugins, PluginKind.VALIDATOR, rule.validator, rule.params
        )
        for m in spec.metrics
        for i, rule in enumerate(m.rules)
        if rule.validator is not None
    }
    if validators:
        table["validators"] = validators
    loaders = {
        d.name: _plugin_identity(plugins, PluginKind.DATASET_LOADER, d.loader, d.params)
        for d in spec.datasets
        if d.loader is not None
    }
    if loaders:
        table["dataset_loaders"] = loaders
    return table


def _compile(
    spec: ExperimentSpec,
    versions: Mapping[str, int],
    runtime_options: RuntimeOptions = RUNTIME_OPTIONS,
    *,
    plugins: PluginRegistry | None = None,
) -> CompiledRun:
    """`compile_run` with `versions` of parsers and metrics instead of today's, and the model
    options that were runtime then (stored runs)."""
    return _Identity(spec, runtime_options, plugins or builtin_plugins()).compiled(versions)


class _Identity:
    """A spec's identity under one set of runtime options and plugins, its experiment part
    encoded once: the only part that grows with the datasets, so trying several implementation
    versions (`compile_stored`) does not encode every case again."""

    def __init__(
        self,
        spec: ExperimentSpec,
        runtime_options: RuntimeOptions,
        plugins: PluginRegistry,
        experiment: Any = None,
    ) -> None:
        self.spec = spec
        self.runtime_options = runtime_options
        self.plugins = plugins
        # `digest(identity)` up to its experiment part, fed the experiment's JSON in pieces
        # (`spec_json`: the whole text of 1M cases, and their views, are ~0.4 GiB); given when
        # it was fed beside another spec's (`_identities`).
        if experiment is None:
            (self.experiment,) = _experiments([spec], runtime_options)
        else:
            self.experiment = experiment

    def compiled(self, versions: Mapping[str, int]) -> CompiledRun:
        spec = self.spec
        implementations = _implementations(spec, versions, self.plugins)
        # `digest(identity)`: the rest of the document after the experiment (keys sorted).
        document = self.experiment.copy()
        rest = f',"format":{IDENTITY_FORMAT},"implementations":{canonical_json(implementations)}}}'
        document.update(rest.encode())
        return CompiledRun(
            run_id=document.hexdigest(),
            spec=spec,
            implementations=implementations,
            runtime_options=self.runtime_options,
            plugins=self.plugins,
        )


def _experiments(specs: list[ExperimentSpec], runtime_options: RuntimeOptions) -> list[Any]:
    """For each of `specs` (holding the same datasets' cases), `digest(identity)`'s hash fed
    up to its experiment part: the cases encoded once for all (`specs_json`), their text's
    bytes made once, and hashed once for all while every piece so far is the same for every
    spec (a derived replay's config and its source differ after their datasets: ADR 0122)."""
    hashed = hashlib.sha256(b'{"experiment":')
    hashes: list[Any] | None = None  # (`hashed` alone while every piece is every spec's)
    for pieces in specs_json(specs, runtime_options):
        first = pieces[0]
        text = first.encode("utf-8")
        if hashes is None and all(piece == first for piece in pieces):
            hashed.update(text)
            continue
        if hashes is None:
            hashes = [hashed.copy() for _ in specs]
        for each, piece in zip(hashes, pieces, strict=True):
            each.update(text if piece is first else piece.encode("utf-8"))
    return [hashed.copy() for _ in specs] if hashes is None else hashes


def compile_stored(
    spec: ExperimentSpec, run_id: str, plugins: PluginRegistry | None = None
) -> CompiledRun | None:
    """`spec` compiled to `run_id` with today's or an older built-in parser/metric version, else
    `None` (also when a plugin's version differs from the one the run was compiled with).

    A run stored before a version bump stays readable: its events hold its parses and scores.
    """
    plugins = plugins or builtin_plugins()
    return _stored(_Identity(spec, RUNTIME_OPTIONS, plugins), run_id)


def _stored(identity: _Identity, run_id: str) -> CompiledRun | None:
    """`compile_stored` of `identity`'s spec, `identity` its experiment under today's runtime
    options (the legacy options' encoded only when those do not give `run_id`)."""
    spec = identity.spec
    names = [
        name
        for name in (spec.parser.name, *(metric.name for metric in spec.metrics))
        if not is_plugin_name(name)
    ]
    current = {**PARSER_VERSIONS, **METRIC_VERSIONS}
    for options in (RUNTIME_OPTIONS, LEGACY_OPTIONS):
        if options is not identity.runtime_options:
            identity = _Identity(spec, options, identity.plugins)
        for versions in itertools.product(*(range(current[name], 0, -1) for name in names)):
            compiled = identity.compiled(dict(zip(names, versions, strict=True)))
            if compiled.run_id == run_id:
                return compiled
    return None


def compile_beside(
    spec: ExperimentSpec,
    stored: ExperimentSpec,
    run_id: str,
    plugins: PluginRegistry | None = None,
) -> tuple[CompiledRun, CompiledRun | None]:
    """`compile_run(spec, plugins)` and `compile_stored(stored, run_id, plugins)` of a `stored`
    that holds `spec`'s datasets (`spec` with another run's metrics, say): each batch of cases
    encoded once for both (a derived replay asks both, ADR 0105). The second is `None` also
    when `stored` cannot be compiled (a plugin not loaded, a value its spec refuses)."""
    plugins = plugins or builtin_plugins()
    shared = len(spec.datasets) == len(stored.datasets) and all(
        ours.cases is theirs.cases
        for ours, theirs in zip(spec.datasets, stored.datasets, strict=True)
    )
    if not shared:
        return compile_run(spec, plugins), _stored_or_none(stored, run_id, plugins)
    try:
        experiments = _experiments([spec, stored], RUNTIME_OPTIONS)
    except (ThemisError, ValueError, TypeError):  # `stored`'s view fails: `spec`'s alone
        return compile_run(spec, plugins), _stored_or_none(stored, run_id, plugins)
    ours = _Identity(spec, RUNTIME_OPTIONS, plugins, experiments[0]).compiled({})
    try:
        theirs = _stored(_Identity(stored, RUNTIME_OPTIONS, plugins, experiments[1]), run_id)
    except (ThemisError, ValueError, TypeError):
        theirs = None
    return ours, theirs


def _stored_or_none(
    spec: ExperimentSpec, run_id: str, plugins: PluginRegistry
) -> CompiledRun | None:
    try:
        return compile_stored(spec, run_id, plugins)
    except (ThemisError, ValueError, TypeError):
        return None


def stand_in_id(compiled: CompiledRun) -> str:
    """The run id `compiled`'s spec compiles to with each dataset's cases stood in for by one
    marked case (`themis.core.case_pieces.marked`), under its parser and metric versions,
    runtime options and plugins: its identity document but for the cases' own text. A stored
    run's facts keep it, so that its identity is checked without reading a case (ADR 0077)."""
    stand_in = _Identity(marked(compiled.spec), compiled.runtime_options, compiled.plugins)
    return stand_in.compiled(compiled.builtin_versions).run_id


def compiled_stand_in(
    outline: ExperimentSpec, stand_in: str, plugins: PluginRegistry | None = None
) -> CompiledRun | None:
    """`outline` (a stored run's spec; its cases may be left out) compiled to the stand-in id
    `stand_in` (`stand_in_id`) with today's code, under any versions and runtime options
    `compile_stored` tries, else `None`: every part of its identity but the cases is then viewed
    as it was when `stand_in` was computed. Its parser, metric and plugin versions and runtime
    options are the stored run's, found without encoding a case (its id is the stand-in's, its
    spec the outline's)."""
    return compile_stored(marked(outline), stand_in, plugins)


def compile_placed(
    spec: ExperimentSpec,
    run_id: str,
    placed: Mapping[str, str],
    plugins: PluginRegistry | None = None,
) -> CompiledRun | None:
    """A stored run's spec cut to a few of its cases (`spec`) compiled as far as planning them
    needs, without the whole spec `run_id` is the digest of (ADR 0066): under each runtime
    options a stored run may have been compiled with (`compile_stored`'s), the one whose plan
    gives exactly the trials `placed` records (trial id -> trial key, as the store placed them
    when the run ran), else `None`. The keys are what ties its trials to their results; its
    parser and metric versions are today's (planning reads none, and only the whole spec tells
    which the run had), so it is fit for planning those cases, not for scoring them."""
    if not placed:
        return None
    plugins = plugins or builtin_plugins()
    implementations = _implementations(spec, {}, plugins)
    for options in (RUNTIME_OPTIONS, LEGACY_OPTIONS):
        compiled = CompiledRun(run_id, spec, implementations, options, plugins)
        if {trial.trial_id: trial.trial_key for trial in plan(compiled)} == placed:
            return compiled
    return None


ANSWER_FIELD = "answer_field"  # a `fake` model option: answer with this case field, verbatim


def reference_of(model: ModelSpec, case: Case) -> str | None:
    """What a scripted model answers when right: the case's expected answer, or the text of
    the field its `answer_field` option names (e.g. a reference solution to run)."""
    name = model.options.get(ANSWER_FIELD)
    if not isinstance(name, str):
        return case.expected
    value = case.fields.get(name)
    return value if value is None or isinstance(value, str) else canonical_json(value)


def sample_seed(spec: ExperimentSpec, params: GenerationParams, sample: int) -> int:
    """The seed sent with `sample`: the model's seed plus the index, else one from the run seed.

    With `params.n`, the samples that share one request share its seed: that of the group's
    first sample.
    """
    if params.n is not None:
        sample -= sample % params.n
    if params.seed is not None:
        return params.seed + sample
    return int(digest([spec.seed, sample])[:8], 16) & 0x7FFFFFFF


def _model_document(
    model: ModelSpec,
    runtime_options: RuntimeOptions = RUNTIME_OPTIONS,
    plugin: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The model's part of a trial key; `api` only when set, so older keys stay unchanged; a
    plugin provider's identity (`plugin`), so its next version does not reuse old answers."""
    document: dict[str, Any] = {
        "model": model.model,
        "options": identity_options(model, runtime_options),
        "provider": model.provider,
    }
    if model.api is not None:
        document["api"] = model.api
    if plugin is not None:
        document["plugin"] = dict(plugin)
    return document


def _model_identity(model: ModelSpec, compiled: CompiledRun) -> str:
    plugin = compiled.implementations.get("models", {}).get(model.provider)
    return canonical_json(_model_document(model, compiled.runtime_options, plugin))


def trial_key(
    model: ModelSpec,
    messages: tuple[Message, ...],
    params: GenerationParams,
    sample: int,
    seed: int,
    plugin: Mapping[str, Any] | None = None,
) -> str:
    """The content address of one generation (see the module docstring); `plugin`: the
    identity of the plugin provider serving `model`, if it is one."""
    return short_digest(
        {
            "messages": [[message.role, message.content] for message in messages],
            "model": _model_document(model, plugin=plugin),
            "params": identity_view(params),
            "sample": sample,
            "seed": seed,
        }
    )


def plan(compiled: CompiledRun) -> Iterator[TrialPlan]:
    """Yield every trial of the run, in a fixed order: dataset, case, prompt, model, sample.

    The hot loop builds both keys' canonical JSON from pieces encoded once per level; the bytes
    equal `canonical_json` of the documents in `trial_key` and `trial_id_of` (a test pins this).
    """
    spec = compiled.spec
    samples = range(spec.samples)
    models = [
        (
            model,
            _model_identity(model, compiled),
            canonical_json(identity_view(model.params)),
            canonical_json(model.name),
            [attrs.evolve(model.params, seed=sample_seed(spec, model.params, i)) for i in samples],
            (model.provider, model.model, model.options, model.api),
        )
        for model in spec.models
    ]
    for dataset in spec.datasets:
        dataset_json = canonical_json(dataset.name)
        for case in dataset.cases:
            case_json = canonical_json(case.id)
            choices = choice_count(spec.parser, case)
            expected = case.expected
            for prompt in spec.prompts:
                prompt_json = canonical_json(prompt.name)
                messages, problem, messages_json = _rendered(prompt, case)
                trial_at = f"[{dataset_json},{case_json},{prompt_json},"
                for model, model_json, params_json, name_json, sample_params, calls in models:
                    reference = reference_of(model, case)
                    provider, model_id, options, api = calls
                    for sample in samples:
                        params = sample_params[sample]
                        key = _trial_key(
                            messages_json, model_json, params_json, sample, params.seed
                        )
                        yield TrialPlan(
                            text_digest(f"{trial_at}{name_json},{sample}]"),
                            key,
                            dataset.name,
                            case.id,
                            model.name,
                            prompt.name,
                            sample,
                            expected,
                            # `ModelRequest.of_model`, its model's part taken once per model
                            ModelRequest(
                                key,
                                provider,
                                model_id,
                                messages,
                                params,
                                options,
                                sample,
                                reference,
                                api,
                            ),
                            choices,
                            problem,
                        )


def _trial_key(
    messages_json: str, model_json: str, params_json: str, sample: int, seed: int | None
) -> str:
    """`trial_key`'s digest from its parts' canonical JSON, encoded once per level by `plan`
    and `replay_plan` (the bytes equal `canonical_json` of its document: a test pins this)."""
    return text_digest(
        f'{{"messages":{messages_json},"model":{model_json},'
        f'"params":{params_json},"sample":{sample},"seed":{seed}}}'
    )


def _rendered(prompt: PromptSpec, case: Case) -> tuple[tuple[Message, ...], str | None, str]:
    """The case's messages under `prompt`, why they cannot be rendered, and their part of the
    trial key (an unrenderable prompt's key is addressed by its reason: it never collides)."""
    texts, problem, messages_json = _rendered_texts(prompt, case)
    return tuple(itertools.starmap(Message, texts)), problem, messages_json


def replay_plan(compiled: CompiledRun) -> Iterator[TrialPlan]:
    """`plan`'s trials for a replay: the same trials, ids and keys (byte for byte, a test pins
    this), but without the model request a replay never makes (ADR 0093). The prompt is still
    rendered (the key is the digest of its messages), to texts only: no `Message`, no
    `ModelRequest`, no scripted reference. A spec with judges gets `plan`'s trials, requests
    and all: a judge reads the rendered question."""
    spec = compiled.spec
    if spec.judges:
        yield from plan(compiled)
        return
    samples = range(spec.samples)
    models = [
        (
            model.name,
            _model_identity(model, compiled),
            canonical_json(identity_view(model.params)),
            canonical_json(model.name),
            [sample_seed(spec, model.params, i) for i in samples],
        )
        for model in spec.models
    ]
    for dataset in spec.datasets:
        dataset_json = canonical_json(dataset.name)
        for case in dataset.cases:
            case_json = canonical_json(case.id)
            choices = choice_count(spec.parser, case)
            expected = case.expected
            for prompt in spec.prompts:
                _, problem, messages_json = _rendered_texts(prompt, case)
                trial_at = f"[{dataset_json},{case_json},{canonical_json(prompt.name)},"
                for name, model_json, params_json, name_json, seeds in models:
                    for sample in samples:
                        key = _trial_key(
                            messages_json, model_json, params_json, sample, seeds[sample]
                        )
                        yield TrialPlan(
                            text_digest(f"{trial_at}{name_json},{sample}]"),
                            key,
                            dataset.name,
                            case.id,
                            name,
                            prompt.name,
                            sample,
                            expected,
                            None,
                            choices,
                            problem,
                        )


def placed_replay_plan(
    compiled: CompiledRun, placed: Sequence[tuple[str, str]]
) -> list[TrialPlan] | None:
    """`replay_plan`'s trials, their ids and keys taken from `placed` (a run's kept places,
    `(trial_id, trial_key)` in plan order) instead of rendering every prompt and digesting
    both keys again (ADR 0107); `None` when `placed` cannot be those trials' places: another
    count, a spec with judges (`replay_plan` gives `plan`'s requests), or a first case whose
    trials, planned as `replay_plan` plans them, do not have the first places' ids and keys
    (ids and keys computed some other way). The caller vouches that `placed` are the places of a
    run whose trials are `compiled`'s (another stage's fields aside, which no key reads).

    No trial gets a `problem`: a prompt that does not render is known only by rendering it, and
    its trial's key is never a completed generation's, so a replay of such a run is refused
    for the generation it lacks before its plan is run."""
    spec = compiled.spec
    if spec.judges or len(placed) != compiled.trial_count:
        return None
    first = len(spec.prompts) * len(spec.models) * spec.samples
    planned = [
        (trial.trial_id, trial.trial_key)
        for trial in itertools.islice(replay_plan(compiled), first)
    ]
    if planned != list(placed[:first]):
        return None
    return _placed_trials(spec, placed)


def _placed_trials(spec: ExperimentSpec, placed: Sequence[tuple[str, str]]) -> list[TrialPlan]:
    """The `TrialPlan`s of `spec`'s trials in plan order (dataset, case, prompt, model,
    sample), their ids and keys `placed`'s, made a field at a time, `_PLACED_PART` cases at
    once: each slot set by its descriptor over a column (`map` in C), where attrs' `__init__`
    sets each through `object.__setattr__`, found by name (~1.2 µs a trial), and a loop setting
    a trial's eleven slots in turn ~0.8 (ADR 0122). A part's columns are bounded: the cases of
    a packed dataset are made as they are read, never held all at once."""
    per_case = [
        (prompt.name, model.name, sample)
        for prompt in spec.prompts
        for model in spec.models
        for sample in range(spec.samples)
    ]
    each = len(per_case)
    if not each:
        return []
    prompts, models, samples = (list(column) for column in zip(*per_case, strict=True))
    places = iter(placed)
    plans: list[TrialPlan] = []
    for dataset in spec.datasets:
        cases = iter(dataset.cases)
        while part := list(itertools.islice(cases, _PLACED_PART)):
            count = len(part) * each
            taken = list(itertools.islice(places, count))
            columns = (
                map(itemgetter(0), taken),
                map(itemgetter(1), taken),
                itertools.repeat(dataset.name, count),
                _each_repeated(list(map(_CASE_ID, part)), each),
                itertools.islice(itertools.cycle(models), count),
                itertools.islice(itertools.cycle(prompts), count),
                itertools.islice(itertools.cycle(samples), count),
                _each_repeated(list(map(_CASE_EXPECTED, part)), each),
                itertools.repeat(None, count),
                _each_repeated([choice_count(spec.parser, case) for case in part], each),
                itertools.repeat(None, count),
            )
            made = list(map(object.__new__, itertools.repeat(TrialPlan, count)))
            for setter, column in zip(_PLAN_SLOTS, columns, strict=True):
                deque(map(setter, made, column), maxlen=0)
            plans += made
    return plans


_CASE_ID, _CASE_EXPECTED = attrgetter("id"), attrgetter("expected")
# Cases whose trials `_placed_trials` makes at once.
_PLACED_PART = 4096


def _each_repeated(values: list[Any], times: int) -> Iterator[Any]:
    """Each of `values` `times` times over, in order."""
    if times == 1:
        return iter(values)
    return itertools.chain.from_iterable(map(itertools.repeat, values, itertools.repeat(times)))


# Each of `TrialPlan`'s slots' setter, in its fields' order (`placed_replay_plan`).
_PLAN_SLOTS = tuple(TrialPlan.__dict__[slot.name].__set__ for slot in attrs.fields(TrialPlan))


def _rendered_texts(
    prompt: PromptSpec, case: Case
) -> tuple[tuple[tuple[str, str], ...], str | None, str]:
    """`_rendered`, the messages as `(role, content)` texts (all a replay's plan needs)."""
    try:
        texts = rendered_texts(prompt, case)
    except PromptError as error:
        return (), str(error), canonical_json({"unrenderable": str(error)})
    # `canonical_json([[role, content], ...])`: a text's JSON is the same whether it stands
    # alone or in a list, and the list has no spaces.
    pairs = ",".join(f"[{canonical_text(role)},{canonical_text(text)}]" for role, text in texts)
    return texts, None, f"[{pairs}]"


class TrialRef(NamedTuple):
    """Where one planned trial belongs, and its two keys: what a report needs of a `TrialPlan`."""

    dataset: str
    case_id: str
    prompt: str
    model: str
    trial_id: str
    trial_key: str


class PlanRecord:
    """The keys of every trial a plan yielded, in plan order, taken while the run consumes it.

    Building the report after a run then needs no second pass of the planner (which renders
    every prompt again): the places come from the spec's loops, the keys from this record.
    For a large run (`is_large_run(trials)`) the keys are held as bytes
    (`HexStrings`, 32 B a trial), not as the run's `str` objects, as its fold holds them
    (ADR 0090).
    """

    def __init__(self, trials: int = 0) -> None:
        self.compact = is_large_run(trials)
        self.trial_ids: MutableSequence[str] = []
        self.trial_keys: MutableSequence[str] = []
        self.complete = False

    def tap(self, plans: Iterable[TrialPlan]) -> Iterator[TrialPlan]:
        """Yield `plans` unchanged, recording each trial's keys; `complete` once exhausted."""
        held = HexStrings if self.compact else list
        self.trial_ids, self.trial_keys, self.complete = held(), held(), False
        add_id, add_key = self.trial_ids.append, self.trial_keys.append
        for trial in plans:
            add_id(trial.trial_id)
            add_key(trial.trial_key)
            yield trial
        ids, keys = self.trial_ids, self.trial_keys
        if isinstance(ids, HexStrings) and isinstance(keys, HexStrings):
            # Their bytes in exact copies, without a growing `bytearray`'s spare room (~12 %:
            # ~4 B a trial, ADR 0102).
            self.trial_ids, self.trial_keys = ids.head(len(ids)), keys.head(len(keys))
        self.complete = True

    def taken(self, plans: list[TrialPlan]) -> Iterator[TrialPlan]:
        """`plans`, the whole plan a caller made first (a derived replay checks it before its
        execution), recorded at once: the record is complete before the first trial runs, so
        the run's places are kept beside its trials rather than after its last (ADR 0112).
        They are then given in order, each let go of once given (`plans` is emptied): the
        record keeps their keys, and the plan is not held to the run's end."""
        for _ in self.tap(plans):
            pass
        queue = deque(plans)
        plans.clear()
        return _given(queue)


def _given(queue: deque[TrialPlan]) -> Iterator[TrialPlan]:
    while queue:
        yield queue.popleft()


def trial_refs(compiled: CompiledRun, record: PlanRecord | None = None) -> Iterator[TrialRef]:
    """Every trial of the run as a `TrialRef`, in `plan` order.

    From `record` when it holds the whole plan of `compiled` (no rendering), else from `plan`.
    """
    if record is None or not record.complete or len(record.trial_ids) != compiled.trial_count:
        for trial in plan(compiled):
            yield TrialRef(
                trial.dataset,
                trial.case_id,
                trial.prompt,
                trial.model,
                trial.trial_id,
                trial.trial_key,
            )
        return
    spec = compiled.spec
    ids, keys = iter(record.trial_ids), iter(record.trial_keys)
    for dataset in spec.datasets:
        for case in dataset.cases:
            for prompt in spec.prompts:
                for model in spec.models:
                    for _ in range(spec.samples):
                        yield TrialRef(
                            dataset.name, case.id, prompt.name, model.name, next(ids), next(keys)
                        )


def trial_id_of(dataset: str, case_id: str, prompt: str, model: str, sample: int) -> str:
    """The id of a trial's place in its run (see the module docstring)."""
    return short_digest([dataset, case_id, prompt, model, sample])


@frozen
class PendingTrial:
    """A planned trial and the stages the log does not yet show done for it."""

    plan: TrialPlan
    stages: tuple[Stage, ...]


def pending(
    plans: Iterable[TrialPlan], state: RunState, until_stage: Stage = Stage.SCORE
) -> Iterator[PendingTrial]:
    """Yield exactly the work the log does not show done, through `until_stage`."""
    wanted = tuple(stage for stage in EXECUTED_STAGES if stage.order <= until_stage.order)
    if not (state.generations or state.parses or state.scores):  # nothing done: every stage
        for trial in plans:
            yield PendingTrial(trial, wanted)
        return
    for trial in plans:
        generated = trial.trial_key in state.generations
        stages = stages_left(wanted, state, trial.trial_id, produced=generated)
        if stages:
            yield PendingTrial(plan=trial, stages=stages)


def stages_left(
    wanted: tuple[Stage, ...], state: RunState, result_id: str, *, produced: bool
) -> tuple[Stage, ...]:
    """The stages of `wanted` still to run for one result: the stage making it (generate, or
    reduce for a group) unless `produced`, then parse and score unless the log holds them for
    `result_id`. From the first stage to run on, every later one runs again."""
    for index, stage in enumerate(wanted):
        if stage is Stage.PARSE:
            done = result_id in state.parses
        elif stage is Stage.SCORE:
            done = result_id in state.scores
        else:
            done = produced
        if not done:
            return wanted[index:]
    return ()

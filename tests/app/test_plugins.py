"""Plugins from `module:attr` references and from Python: found when a config compiles, run
in place of built-ins, named in one-line errors, and part of the run's identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import themis
from tests.plugins.lab import Write, lab_modules
from themis.adapters.stores.memory import MemoryStore
from themis.app.config.loading import config_from_mapping
from themis.core.builtins import builtin_plugins
from themis.core.errors import ConfigError
from themis.core.events import ReductionCompleted
from themis.core.plugins import PluginKind, PluginRegistry, plugin
from themis.core.spec import METRIC_NAMES, PARSER_NAMES, REDUCER_NAMES

MODULE = """
from themis import plugin


@plugin("metric", version="{version}")
def overlap(answer: str, expected: str, *, lowercase: bool = True) -> float:
    def words(text: str) -> set[str]:
        return set((text.lower() if lowercase else text).split())

    want = words(expected)
    return len(want & words(answer)) / len(want) if want else 0.0


def last_word(text: str) -> str | None:
    words = text.split()
    return words[-1].strip(".") if words else None


def shout(request):
    return f"THE ANSWER IS {{request.reference}}."


def rows(path, *, count=3):
    return [{{"id": f"r{{i}}", "q": f"say {{i}}", "answer": str(i)}} for i in range(count)]


def last(samples, *, offset=0):
    return samples[-1 - offset]["sample"]


NOT_CALLABLE = 3
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    return lab_modules(tmp_path, monkeypatch, MODULE)


def _config(module: str, **changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "name": "plugins",
        "seed": 3,
        "samples": 1,
        "datasets": [{"name": "d", "loader": f"{module}:rows"}],
        "models": [{"name": "m", "provider": f"{module}:shout", "model": "loud"}],
        "prompts": [{"name": "p", "template": "{{ q }}"}],
        "parser": {"name": f"{module}:last_word"},
        "metrics": [{"name": f"{module}:overlap"}, {"name": "exact_match"}],
    }
    table.update(changes)
    return table


def _load(table: dict[str, Any], registry: PluginRegistry | None = None) -> themis.Experiment:
    loaded = config_from_mapping(
        table, base_dir=Path.cwd(), source_name="lab.toml", plugins=registry
    )
    return themis.Experiment(loaded.spec, loaded.runtime, check=False, plugins=loaded.plugins)


def test_plugins_from_module_references_load_generate_parse_and_score(lab: Any) -> None:
    module = lab("lab_run")
    experiment = _load(_config(module))
    result = experiment.run(store=MemoryStore())
    assert result.status == "completed"
    assert result.model_calls == 3
    means = {row.metric: row.mean for row in result.report.rows}
    assert means == {f"{module}:overlap": 1.0, "exact_match": 1.0}


def test_a_plugins_version_and_parameters_are_part_of_the_run_id(lab: Any) -> None:
    first, second = lab("lab_v1", "1"), lab("lab_v2", "2")
    one = _load(_config(first)).compiled.identity["implementations"]["metrics"]
    assert one[f"{first}:overlap"] == {
        "reference": f"{first}:overlap",
        "version": "1",
        "params": {"lowercase": True},
    }
    # The same code under version 2 (in another module) and the same code with another parameter.
    metric = {"name": f"{first}:overlap", "params": {"lowercase": False}}
    ids = {
        _load(_config(first)).run_id,
        _load(_config(second, metrics=[{"name": f"{second}:overlap"}])).run_id,
        _load(_config(first, metrics=[metric])).run_id,
    }
    assert len(ids) == 3


def test_an_unversioned_module_is_versioned_by_its_source(lab: Any) -> None:
    module = lab("lab_src")
    identity = _load(_config(module)).compiled.identity["implementations"]
    assert identity["parser"][f"{module}:last_word"]["version"].startswith("src-")
    assert identity["models"][f"{module}:shout"]["version"].startswith("src-")
    assert identity["dataset_loaders"]["d"]["params"] == {"count": 3}


def test_a_plugin_provider_is_in_the_trial_key_so_versions_never_share_answers(lab: Any) -> None:
    module = lab("lab_keys")
    experiment = _load(_config(module))
    builtin = _load(_config(module, models=[{"name": "m", "provider": "fake", "model": "loud"}]))
    assert {t.trial_key for t in experiment.plan()}.isdisjoint(t.trial_key for t in builtin.plan())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"parser": {"name": "nowhere_lab:parse"}},
            "lab.toml: parser.name: parser plugin 'nowhere_lab:parse': cannot import nowhere_lab",
        ),
        (
            {"parser": {"name": "{m}:missing"}},
            "lab.toml: parser.name: parser plugin '{m}:missing': {m} has no 'missing'",
        ),
        (
            {"metrics": [{"name": "{m}:NOT_CALLABLE"}]},
            "lab.toml: metrics[0].name: metric plugin '{m}:NOT_CALLABLE' is a int, not callable",
        ),
        (
            {"metrics": [{"name": "{m}:overlap", "params": {"lowercas": False}}]},
            "lab.toml: metrics[0].params: no parameter of metric plugin '{m}:overlap' is named "
            "'lowercas' (did you mean 'lowercase'?)",
        ),
        (
            {"metrics": [{"name": "lab.f1"}]},
            "lab.toml: metrics[0].name: no metric plugin is named 'lab.f1'",
        ),
        (
            {"parser": {"name": "{m}:overlap"}},
            "lab.toml: parser.name: parser plugin '{m}:overlap' is a metric plugin, not a parser",
        ),
    ],
)
def test_a_missing_or_broken_plugin_is_one_line_naming_it(
    lab: Any, change: dict[str, Any], message: str
) -> None:
    module = lab("lab_errors")
    table = {key: _with_module(value, module) for key, value in change.items()}
    with pytest.raises(ConfigError) as raised:
        _load(_config(module, **table))
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(message.format(m=module))


def _with_module(value: Any, module: str) -> Any:
    if isinstance(value, str):
        return value.format(m=module)
    if isinstance(value, dict):
        return {key: _with_module(item, module) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_module(item, module) for item in value]
    return value


def test_a_misspelt_builtin_is_still_refused_as_one() -> None:
    with pytest.raises(ValueError, match="did you mean 'exact_match'"):
        themis.MetricSpec(name="exact_mach")


def test_builtins_are_registered_like_plugins() -> None:
    registry = builtin_plugins()
    assert registry.names(PluginKind.PARSER) == tuple(sorted(PARSER_NAMES))
    assert registry.names(PluginKind.METRIC) == tuple(sorted(METRIC_NAMES))
    assert registry.names(PluginKind.REDUCER) == tuple(sorted(REDUCER_NAMES))
    assert all(item.builtin for item in registry)


@plugin("metric", name="lab.starts_with", version="3")
def starts_with(answer: str, expected: str, *, length: int = 1) -> float:
    return float(answer[:length] == expected[:length])


def test_a_decorated_function_registered_in_python_is_used_by_name() -> None:
    registry = PluginRegistry()
    registry.register(starts_with)
    spec = themis.ExperimentSpec(
        seed=1,
        samples=1,
        datasets=[themis.DatasetSpec(name="d", cases=[themis.Case(id="1", expected="42")])],
        models=[themis.ModelSpec(name="m", model="fake", options={"skill": 1.0})],
        prompts=[themis.PromptSpec(name="p", template="What is 6 x 7?")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="lab.starts_with", params={"length": 2})],
    )
    experiment = themis.Experiment(spec, plugins=registry)
    entry = experiment.compiled.identity["implementations"]["metrics"]["lab.starts_with"]
    assert entry["version"] == "3"
    assert entry["params"] == {"length": 2}
    result = experiment.run(store=MemoryStore())
    assert [row.mean for row in result.report.rows] == [1.0]
    with pytest.raises(ConfigError, match=r"no metric plugin is named 'lab\.starts_with'"):
        themis.Experiment(spec)


def test_registering_an_unlabelled_or_unversioned_function_is_refused() -> None:
    def loose(answer: str, expected: str) -> float:
        return 0.0

    with pytest.raises(ValueError, match="register a function labelled @plugin"):
        PluginRegistry().register(loose)
    with pytest.raises(ValueError, match="must be dotted"):
        plugin("metric", name="f1")


def test_a_reducer_plugin_chooses_each_groups_candidate(lab: Any) -> None:
    module = lab("lab_reduce")
    table = _config(module, samples=3, reducer={"name": f"{module}:last", "params": {"offset": 1}})
    experiment = _load(table)
    implementations = experiment.compiled.identity["implementations"]
    assert implementations["reducer"][f"{module}:last"]["params"] == {"offset": 1}
    store = MemoryStore()
    result = experiment.run(store=store)
    assert result.status == "completed"
    reductions = [e for _, e in store.read(result.run_id) if isinstance(e, ReductionCompleted)]
    assert len(reductions) == 3
    assert {event.sample for event in reductions} == {1}  # the last but one of 3 samples
    assert {event.reducer for event in reductions} == {f"{module}:last"}

"""Config loading: the example file, strict types, one-line errors with key paths, `--set`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from themis.app.config import loading as config_module
from themis.app.config.loading import (
    LoadedConfig,
    config_from_mapping,
    load_config,
    parse_override,
    runtime_from_mapping,
)
from themis.core.errors import ConfigError
from themis.core.runtime import RateLimit, RuntimeConfig
from themis.core.spec import Case

EXAMPLE = """\
name = "demo"
seed = 7
samples = 2
[[datasets]]
name = "arith"
path = "data/arith.jsonl"
expected_field = "answer"
[[models]]
name = "strong"
provider = "fake"
model = "fake-strong"
options = { skill = 0.9 }
[models.params]
temperature = 0.0
max_tokens = 32
[[prompts]]
name = "direct"
template = "Q: {{ question }}\\nA:"
[parser]
name = "number"
[[metrics]]
name = "numeric_match"
[runtime]
max_concurrent_tasks = 16
"""

ROWS = [{"id": "a", "question": "1+1", "answer": 2}, {"id": "b", "question": "2+2", "answer": 4}]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config directory holding `data/arith.jsonl`; returns the directory."""
    (tmp_path / "data").mkdir()
    lines = "\n".join(json.dumps(row) for row in ROWS)
    (tmp_path / "data" / "arith.jsonl").write_text(lines + "\n", encoding="utf-8")
    return tmp_path


def write(directory: Path, text: str, name: str = "demo.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def loaded(path: Path, overrides: tuple[str, ...] = ()) -> LoadedConfig:
    return load_config(path, overrides)


def error(path: str | Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(path, overrides)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_public_api_is_pinned() -> None:
    assert sorted(config_module.__all__) == [
        "LoadedConfig",
        "check_config",
        "config_from_mapping",
        "load_benchmark",
        "load_config",
        "parse_override",
        "read_table",
        "runtime_from_mapping",
    ]


def test_example_maps_onto_spec_and_runtime(project: Path) -> None:
    result = loaded(write(project, EXAMPLE))
    spec = result.spec
    assert (spec.name, spec.seed, spec.samples) == ("demo", 7, 2)
    (dataset,) = spec.datasets
    assert dataset.path == "data/arith.jsonl"  # kept as written: provenance
    assert dataset.cases == (
        Case(id="a", fields=ROWS[0], expected="2"),
        Case(id="b", fields=ROWS[1], expected="4"),
    )
    (model,) = spec.models
    assert (model.name, model.provider, model.model) == ("strong", "fake", "fake-strong")
    assert model.params.max_tokens == 32
    assert dict(model.options) == {"skill": 0.9}
    assert spec.prompts[0].template == "Q: {{ question }}\nA:"
    assert spec.parser.name == "number"
    assert [metric.name for metric in spec.metrics] == ["numeric_match"]
    assert result.runtime == RuntimeConfig(max_concurrent_tasks=16)
    assert result.source == (project / "demo.toml").resolve()


def test_float_field_accepts_an_int(project: Path) -> None:
    text = EXAMPLE.replace("temperature = 0.0", "temperature = 1")
    temperature = loaded(write(project, text)).spec.models[0].params.temperature
    assert temperature == 1.0
    assert type(temperature) is float


def test_rate_limit_tables_become_rate_limits(project: Path) -> None:
    text = EXAMPLE + "[runtime.provider_rate_limits.fake]\nrequests_per_minute = 60\n"
    limits = loaded(write(project, text)).runtime.provider_rate_limits
    assert limits == {"fake": RateLimit(requests_per_minute=60.0)}


def test_runtime_defaults_when_the_table_is_absent(project: Path) -> None:
    text = EXAMPLE.replace("[runtime]\nmax_concurrent_tasks = 16\n", "")
    assert loaded(write(project, text)).runtime == RuntimeConfig()


def test_dataset_paths_resolve_against_the_config_directory(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    result = loaded(write(project, EXAMPLE))
    assert [case.id for case in result.spec.datasets[0].cases] == ["a", "b"]


def test_json_config_gives_the_same_spec(project: Path) -> None:
    data: dict[str, Any] = {
        "name": "demo",
        "seed": 7,
        "samples": 2,
        "datasets": [{"name": "arith", "path": "data/arith.jsonl", "expected_field": "answer"}],
        "models": [
            {
                "name": "strong",
                "provider": "fake",
                "model": "fake-strong",
                "options": {"skill": 0.9},
                "params": {"temperature": 0.0, "max_tokens": 32},
            }
        ],
        "prompts": [{"name": "direct", "template": "Q: {{ question }}\nA:"}],
        "parser": {"name": "number"},
        "metrics": [{"name": "numeric_match"}],
        "runtime": {"max_concurrent_tasks": 16},
    }
    from_json = loaded(write(project, json.dumps(data), "demo.json"))
    from_toml = loaded(write(project, EXAMPLE))
    assert from_json.spec == from_toml.spec
    assert from_json.runtime == from_toml.runtime


def test_file_level_errors(tmp_path: Path) -> None:
    assert error(write(tmp_path, "a: 1", "demo.yaml")).endswith(
        "demo.yaml: unsupported config format '.yaml' (use .toml or .json)"
    )
    assert error(tmp_path / "absent.toml") == f"{tmp_path / 'absent.toml'}: file not found"
    (tmp_path / "dir.toml").mkdir()
    assert error(tmp_path / "dir.toml").endswith("dir.toml: is a directory, not a config file")
    bad_utf8 = tmp_path / "latin.toml"
    bad_utf8.write_bytes(b'name = "caf\xe9"\n')
    assert error(bad_utf8) == f"{bad_utf8}: not UTF-8 text (byte 11)"


def test_syntax_errors_name_line_and_column(tmp_path: Path) -> None:
    toml_file = write(tmp_path, 'name = "x"\nseed = 7\nsamples = \n')
    assert error(toml_file) == f"{toml_file}: invalid TOML: Invalid value (at line 3, column 11)"
    json_file = write(tmp_path, '{\n  "seed": 7,\n  "samples": }', "demo.json")
    assert error(json_file) == (
        f"{json_file}: invalid JSON: Expecting value (at line 3, column 14)"
    )
    list_file = write(tmp_path, "[1, 2]", "list.json")
    assert error(list_file) == f"{list_file}: expected a JSON object at the top level, got [1, 2]"


# (text to replace in EXAMPLE, replacement, expected message after "<file>: ")
BAD = [
    (
        "temperature = 0.0",
        "temprature = 0.0",
        "models[0].params.temprature: unknown key (did you mean 'temperature'?)",
    ),
    ("samples = 2", 'samples = "two"', "samples: expected int, got 'two'"),
    ("samples = 2", "samples = true", "samples: expected int, got True"),
    ("samples = 2", "samples = 0", "samples: must be an integer >= 1, got 0"),
    ("seed = 7\n", "", "seed: missing required key"),
    ('model = "fake-strong"\n', "", "models[0].model: missing required key"),
    ('model = "fake-strong"', "model = 3", "models[0].model: expected str, got 3"),
    (
        "temperature = 0.0",
        "temperature = nan",
        "models[0].params.temperature: expected a finite number, got nan",
    ),
    (
        "temperature = 0.0",
        'temperature = "hot"',
        "models[0].params.temperature: expected a finite number, got 'hot'",
    ),
    ("max_tokens = 32", "max_tokens = 32.5", "models[0].params.max_tokens: expected int, got 32.5"),
    (
        "max_tokens = 32",
        "max_tokens = 0",
        "models[0].params.max_tokens: must be an integer >= 1, got 0",
    ),
    ("max_tokens = 32", 'stop = "END"', "models[0].params.stop: expected an array, got 'END'"),
    ("max_tokens = 32", 'stop = ["END", 1]', "models[0].params.stop[1]: expected str, got 1"),
    ("options = { skill = 0.9 }", "options = 3", "models[0].options: expected a table, got 3"),
    (
        'name = "number"',
        'name = "nmber"',
        "parser.name: must be one of raw, strip, number, regex, choice, code; got 'nmber'"
        " (did you mean 'number'?)",
    ),
    ('name = "numeric_match"', "name = 1", "metrics[0].name: expected str, got 1"),
    (
        'A:"\n',
        'A:"\n[[prompts]]\nname = "direct"\ntemplate = "x"\n',
        "prompts: name 'direct' is used twice",
    ),
    (
        'template = "Q: {{ question }}\\nA:"\n',
        "",
        "prompts[0].template: missing required key",
    ),
    (
        '[[prompts]]\nname = "direct"\ntemplate = "Q: {{ question }}\\nA:"\n',
        "",
        "prompts: missing required key",
    ),
    (
        "max_concurrent_tasks = 16",
        "max_concurrent_tasks = 0",
        "runtime.max_concurrent_tasks: must be an integer >= 1, got 0",
    ),
    (
        "max_concurrent_tasks = 16",
        "max_concurent_tasks = 16",
        "runtime.max_concurent_tasks: unknown key (did you mean 'max_concurrent_tasks'?)",
    ),
    (
        "max_concurrent_tasks = 16",
        'existing_run_policy = "never"',
        "runtime.existing_run_policy: must be one of auto, error, rerun; got 'never'",
    ),
    (
        "max_concurrent_tasks = 16",
        "checkpoint_interval = -1",
        "runtime.checkpoint_interval: must be an integer >= 0, got -1",
    ),
    (
        "max_concurrent_tasks = 16",
        'reuse_generations = "no"',
        "runtime.reuse_generations: expected true or false, got 'no'",
    ),
    (
        "max_concurrent_tasks = 16",
        "[runtime.stage_concurrency]\ngenerate = 0",
        "runtime.stage_concurrency.generate: must be an integer >= 1, got 0",
    ),
    (
        "max_concurrent_tasks = 16",
        "[runtime.stage_concurrency]\ngenerat = 2",
        "runtime.stage_concurrency.generat: no stage is named 'generat' (did you mean 'generate'?)",
    ),
    (
        "max_concurrent_tasks = 16",
        "[runtime.provider_rate_limits.openai]\nrpm = 1",
        "runtime.provider_rate_limits.openai.rpm: unknown key"
        " (known: requests_per_minute, tokens_per_minute, burst)",
    ),
    (
        "max_concurrent_tasks = 16",
        "[runtime.provider_rate_limits.openai]\ntokens_per_minute = -5",
        "runtime.provider_rate_limits.openai.tokens_per_minute: must be a number > 0, got -5.0",
    ),
    ('name = "demo"', 'name = "demo"\ncolour = "red"', "colour: unknown key (known: "),
    (
        "seed = 7\nsamples = 2\n",
        'seed = "x"\nsamples = "two"\n',
        "seed: expected int, got 'x' (and 1 more)",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD)
def test_bad_values_give_one_line_with_file_and_key_path(
    project: Path, old: str, new: str, expected: str
) -> None:
    assert old in EXAMPLE
    path = write(project, EXAMPLE.replace(old, new, 1))
    message = error(path)
    assert message.startswith(f"{path}: {expected}")
    if not expected.endswith(": "):
        assert message == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("table", "line", "expected"),
    [
        (
            '[parser]\nname = "number"\n',
            'parser = "number"',
            "parser: expected a table, got 'number'",
        ),
        (
            "[runtime]\nmax_concurrent_tasks = 16\n",
            "runtime = 3",
            "runtime: expected a table, got 3",
        ),
        (
            '[[metrics]]\nname = "numeric_match"\n',
            'metrics = "exact"',
            "metrics: expected an array, got 'exact'",
        ),
    ],
)
def test_tables_given_as_scalars(project: Path, table: str, line: str, expected: str) -> None:
    """A top-level line replaces the table (TOML keys after a table header belong to it)."""
    assert table in EXAMPLE
    text = line + "\n" + EXAMPLE.replace(table, "")
    path = write(project, text)
    assert error(path) == f"{path}: {expected}"


def test_missing_dataset_file_names_the_resolved_path(project: Path) -> None:
    path = write(project, EXAMPLE.replace("data/arith.jsonl", "data/x.jsonl"))
    missing = (project / "data" / "x.jsonl").resolve()
    assert error(path) == f"{path}: datasets[0].path: file not found: {missing}"


def test_bad_dataset_rows_are_reported_under_the_dataset(project: Path) -> None:
    (project / "data" / "arith.jsonl").write_text('{"id": "a"}\n{"id": \n', encoding="utf-8")
    path = write(project, EXAMPLE)
    data_file = (project / "data" / "arith.jsonl").resolve()
    assert error(path) == (
        f"{path}: datasets[0].path: {data_file} line 2: invalid JSON: Expecting value (column 8)"
    )


def test_error_names_the_config_as_given_not_resolved(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project, EXAMPLE.replace("samples = 2", "samples = 0"))
    monkeypatch.chdir(project)
    assert error("demo.toml") == "demo.toml: samples: must be an integer >= 1, got 0"


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("runtime.max_concurrent_tasks=8", ["runtime", "max_concurrent_tasks"], 8),
        ("models.0.params.temperature=0.5", ["models", "0", "params", "temperature"], 0.5),
        ("x=true", ["x"], True),
        ('x="text"', ["x"], "text"),
        ('x=" padded "', ["x"], " padded "),
        ("x=[1,2]", ["x"], [1, 2]),
        ("x={a=1}", ["x"], {"a": 1}),
        ("x=demo", ["x"], "demo"),
        ("x=hello world", ["x"], "hello world"),
        ("x=a=b", ["x"], "a=b"),
        ("x=", ["x"], ""),
        ("x=2024-01-01", ["x"], "2024-01-01"),
        (" x = 1 ", ["x"], 1),
    ],
)
def test_parse_override_reads_toml_literals_or_bare_strings(
    text: str, path: list[str], value: Any
) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("novalue", "--set novalue: expected KEY=VALUE"),
        ("=1", "--set =1: expected KEY=VALUE"),
        ("a..b=1", "--set a..b=1: empty segment in key 'a..b'"),
    ],
)
def test_parse_override_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_override(text)
    assert str(raised.value) == message


def test_overrides_apply_in_order_by_index_and_by_name(project: Path) -> None:
    path = write(project, EXAMPLE)
    result = loaded(
        path,
        (
            "runtime.max_concurrent_tasks=8",
            "models.0.params.temperature=0.5",
            "models.strong.params.max_tokens=64",
            "samples=3",
            "samples=4",
            "name=renamed run",
        ),
    )
    assert result.runtime.max_concurrent_tasks == 8
    assert result.spec.models[0].params.temperature == 0.5
    assert result.spec.models[0].params.max_tokens == 64
    assert result.spec.samples == 4
    assert result.spec.name == "renamed run"


def test_overrides_may_set_valid_keys_absent_from_the_file(project: Path) -> None:
    path = write(project, EXAMPLE)
    result = loaded(path, ("runtime.progress=off", "runtime.stage_concurrency.generate=4"))
    assert result.runtime.progress == "off"
    assert result.runtime.stage_concurrency == {"generate": 4}


def test_off_unsets_an_optional_number_in_the_file_and_with_set(project: Path) -> None:
    text = EXAMPLE.replace("[runtime]", '[runtime]\ncall_timeout = "off"\nidle_timeout = 30', 1)
    assert "call_timeout" in text
    result = loaded(write(project, text))
    assert (result.runtime.call_timeout, result.runtime.idle_timeout) == (None, 30.0)
    result = loaded(
        write(project, EXAMPLE), ("runtime.call_timeout=off", "runtime.idle_timeout=off")
    )
    assert (result.runtime.call_timeout, result.runtime.idle_timeout) == (None, None)
    result = loaded(write(project, EXAMPLE), ("models.strong.params.seed=off",))
    assert result.spec.models[0].params.seed is None
    assert RuntimeConfig().call_timeout == 120.0  # the default stays on


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "runtime.call_timeout=of",
            "{file}: runtime.call_timeout: expected a finite number or \"off\", got 'of'",
        ),
        (
            "runtime.idle_timeout=true",
            '{file}: runtime.idle_timeout: expected a finite number or "off", got True',
        ),
        ("runtime.x=1", "{file}: runtime.x: unknown key (known: "),
        ("samples=two", "{file}: samples: expected int, got 'two'"),
        ("runtime.max_concurrent_tasks=0", "{file}: runtime.max_concurrent_tasks: must be an"),
        (
            "models.weak.params.temperature=1",
            "--set models.weak.params.temperature=1: models: no item named 'weak' (names: strong)",
        ),
        ("models.3.model=x", "--set models.3.model=x: models: index 3 out of range (1 items)"),
        ("samples.x=1", "--set samples.x=1: samples: is 2, not a table"),
        ("judges.0.name=x", "--set judges.0.name=x: judges: no array to index"),
        ("oops", "--set oops: expected KEY=VALUE"),
    ],
)
def test_bad_overrides_fail_with_one_line(project: Path, override: str, expected: str) -> None:
    path = write(project, EXAMPLE)
    assert error(path, (override,)).startswith(expected.format(file=path))


def test_config_from_mapping_takes_inline_cases(tmp_path: Path) -> None:
    data = {
        "seed": 1,
        "samples": 1,
        "datasets": [{"name": "d", "cases": [{"id": "1", "fields": {"q": "x"}, "expected": "y"}]}],
        "models": [{"name": "m", "model": "fake-m"}],
        "prompts": [{"name": "p", "template": "{{ q }}"}],
    }
    result = config_from_mapping(data, base_dir=tmp_path, source_name="<api>")
    assert result.spec.datasets[0].cases == (Case(id="1", fields={"q": "x"}, expected="y"),)
    assert result.runtime == RuntimeConfig()
    assert result.source == Path("<api>")


def test_config_from_mapping_reports_with_the_source_name(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "seed": 1,
        "samples": 1,
        "datasets": [{"name": "d", "cases": [{"id": "1", "expected": 4}]}],
        "models": [{"name": "m", "model": "fake-m"}],
        "prompts": [{"name": "p", "template": "x"}],
    }
    assert mapping_error(data, tmp_path) == (
        "<api>: datasets[0].cases[0].expected: expected str, got 4"
    )
    data["datasets"] = [{"name": "d", "path": "rows.csv"}]
    missing = (tmp_path / "rows.csv").resolve()
    assert mapping_error(data, tmp_path) == f"<api>: datasets[0].path: file not found: {missing}"
    assert mapping_error([], tmp_path) == "<api>: expected a table at the top level, got []"


def mapping_error(data: Any, base_dir: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        config_from_mapping(data, base_dir=base_dir, source_name="<api>")
    return str(raised.value)


def test_runtime_from_mapping() -> None:
    assert runtime_from_mapping({"store_batch_size": 10}, "cfg") == RuntimeConfig(
        store_batch_size=10
    )
    with pytest.raises(ConfigError) as unknown:
        runtime_from_mapping({"store_batch": 10}, "cfg")
    assert str(unknown.value) == (
        "cfg: runtime.store_batch: unknown key (did you mean 'store_batch_size'?)"
    )
    with pytest.raises(ConfigError) as not_a_table:
        runtime_from_mapping([1], "cfg")
    assert str(not_a_table.value) == "cfg: runtime: expected a table, got an array"

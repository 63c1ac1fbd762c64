"""The `themis` CLI in-process: run / reuse / resume, overrides and identity, reports, run lists,
and the one-line `error:` contract for every expected failure."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import Invoke, assert_no_such_store, one_error_line

RunJson = Callable[..., dict[str, Any]]

DATASETS = ("arithmetic",)
MODELS = ("strong", "weak")
PROMPTS = ("direct", "reasoning")
METRICS = ("numeric_match", "exact_match")
CASES, SAMPLES = 24, 3
TRIALS = CASES * SAMPLES * len(MODELS) * len(PROMPTS)  # 288
INVOCATION_KEYS = ("reused", "trials_executed", "model_calls")
# What rich's progress bar draws; the report table (on stdout) draws with box characters instead.
BAR_CHARACTERS = ("━", "╸", "╺")


REPORT_ONLY_KEYS = ("by", "created_at", "provenance", "statistics")


def _report_part(data: dict[str, Any]) -> dict[str, Any]:
    """`run --json` minus what the invocation did: what `report --format json` prints."""
    return {key: value for key, value in data.items() if key not in INVOCATION_KEYS}


def _report_section(data: dict[str, Any]) -> dict[str, Any]:
    """`report --format json` minus what only it adds (grouping, provenance, definitions)."""
    assert {"by", "created_at", "provenance", "statistics"} <= data.keys()
    return {key: value for key, value in data.items() if key not in REPORT_ONLY_KEYS}


def test_run_twice_reuses_the_stored_run(demo: Path, run_json: RunJson) -> None:
    first = run_json(demo)
    second = run_json(demo)

    assert second["run_id"] == first["run_id"]
    assert len(first["run_id"]) == 64
    assert (first["reused"], first["trials_executed"], first["model_calls"]) == (
        False,
        TRIALS,
        TRIALS,
    )
    assert (second["reused"], second["trials_executed"], second["model_calls"]) == (True, 0, 0)
    assert _report_part(second) == _report_part(first)
    assert second["name"] == "demo-arithmetic"
    assert second["status"] == "completed"
    assert second["completed_through_stage"] == "score"
    assert second["trials"] == {
        "planned": TRIALS,
        "scored": TRIALS,
        "failed": 0,
        "pending": 0,
        "truncated": 0,
        "retried": 0,
        "cache_hits": 0,
    }


def test_run_reports_every_cell_with_a_confidence_interval(demo: Path, run_json: RunJson) -> None:
    rows = run_json(demo)["results"]

    cells = [(row["dataset"], row["model"], row["prompt"], row["metric"]) for row in rows]
    assert sorted(cells) == sorted(itertools.product(DATASETS, MODELS, PROMPTS, METRICS))
    assert len(rows) == 8
    for row in rows:
        assert row["n"] == CASES * SAMPLES == 72
        assert (row["failed"], row["unparsed"]) == (0, 0)
        assert 0.0 <= row["ci_low"] <= row["mean"] <= row["ci_high"] <= 1.0
    by_cell = {cell: row["mean"] for cell, row in zip(cells, rows, strict=True)}
    for prompt, metric in itertools.product(PROMPTS, METRICS):  # the demo's skills: 0.85 vs 0.55
        strong = by_cell["arithmetic", "strong", prompt, metric]
        weak = by_cell["arithmetic", "weak", prompt, metric]
        assert strong > weak


def test_a_runtime_override_keeps_the_run_id(demo: Path, run_json: RunJson) -> None:
    first = run_json(demo)
    changed = run_json(demo, "--set", "runtime.max_concurrent_tasks=3")

    assert changed["run_id"] == first["run_id"]
    assert changed["reused"] is True
    assert changed["model_calls"] == 0


@pytest.mark.parametrize(
    ("override", "calls"),
    [
        ("seed=99", TRIALS),  # every sample's seed, hence every trial key, changes
        # Only the `direct` prompt's requests change; the `reasoning` half is reused by key.
        ('prompts.direct.template="Reply with the number only.\\n{{ question }}"', TRIALS // 2),
    ],
)
def test_an_experiment_override_changes_the_run_id(
    demo: Path, run_json: RunJson, override: str, calls: int
) -> None:
    base = run_json(demo, "--until-stage", "generate")
    changed = run_json(demo, "--set", override, "--until-stage", "generate")

    assert changed["run_id"] != base["run_id"]
    assert changed["reused"] is False
    assert changed["model_calls"] == calls


def test_report_json_is_the_report_part_of_run_json(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    ran = run_json(demo)

    result = invoke("report", ran["run_id"], "--store", store, "--format", "json")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert _report_section(json.loads(result.stdout)) == _report_part(ran)


def test_report_accepts_a_unique_prefix(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke
) -> None:
    ran = run_json(demo)
    prefix = ran["run_id"][:6]

    as_json = invoke("report", prefix, "--store", store, "--format", "json")
    as_table = invoke("report", prefix, "--store", store)

    assert as_json.exit_code == 0, as_json.output
    assert _report_section(json.loads(as_json.stdout)) == _report_part(ran)
    assert as_table.exit_code == 0, as_table.output
    assert f"run {ran['run_id'][:12]} · completed through score" in as_table.stdout
    assert "numeric_match" in as_table.stdout
    assert f"trials: {TRIALS} planned, {TRIALS} scored, 0 failed, 0 pending" in as_table.stdout


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        ("ffffffffffff", "no run 'ffffffffffff' in the store"),
        ("abc", "too short"),
    ],
)
def test_report_of_an_unknown_run_is_one_error_line(
    demo: Path, store: Path, run_json: RunJson, invoke: Invoke, run_id: str, message: str
) -> None:
    run_json(demo)

    line = one_error_line(invoke("report", run_id, "--store", store))

    assert message in line


def test_runs_lists_the_run(demo: Path, store: Path, run_json: RunJson, invoke: Invoke) -> None:
    ran = run_json(demo)

    table = invoke("runs", "--store", store)
    listed = invoke("runs", "--store", store, "--json")

    assert table.exit_code == 0, table.output
    assert ran["run_id"][:16] in table.stdout
    assert "demo-arithmetic" in table.stdout
    assert listed.exit_code == 0, listed.output
    listing = json.loads(listed.stdout)
    checked = json.loads(invoke("quickcheck", "--store", store, "--json").stdout)
    assert listing.keys() == checked.keys() == {"live", "runs"}  # one shape for both
    entries = listing["runs"]
    assert [(e["run_id"], e["name"], e["status"]) for e in entries] == [
        (ran["run_id"], "demo-arithmetic", "completed")
    ]
    assert entries[0]["completed_through_stage"] == "score"
    assert entries[0]["events"] > TRIALS
    assert entries[0]["created_at"].endswith(" UTC")


@pytest.mark.parametrize(
    "command",
    [
        ("report", "abcdef"),
        ("report", "abcdef", "--format", "json"),
        ("runs",),
        ("runs", "--json"),
    ],
)
def test_a_missing_store_is_one_error_line_and_is_not_created(
    tmp_path: Path, invoke: Invoke, command: tuple[str, ...]
) -> None:
    assert_no_such_store(invoke, tmp_path, command)


def _edit(demo: Path, old: str, new: str) -> str:
    text = demo.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


# Each case: a file name, how to derive its content from the demo, and what the line must name.
BAD_CONFIGS: list[tuple[str, Callable[[Path], str] | None, list[str]]] = [
    (
        "unknown-key.toml",
        lambda demo: _edit(demo, "samples = 3", "samples = 3\nsamplez = 4"),
        ["samplez", "unknown key"],
    ),
    (
        "unknown-nested-key.toml",
        lambda demo: _edit(demo, "max_tokens = 32", "max_tokens = 32\ntemprature = 0.5"),
        ["temprature", "unknown key"],
    ),
    (
        "wrong-type.toml",
        lambda demo: _edit(demo, "samples = 3", 'samples = "three"'),
        ["samples", "'three'"],
    ),
    (
        "missing-dataset.toml",
        lambda demo: _edit(demo, "data/arithmetic.jsonl", "data/nowhere.jsonl"),
        ["datasets[0].path", "nowhere.jsonl"],
    ),
    (
        "bad-syntax.toml",
        lambda demo: _edit(demo, 'name = "demo-arithmetic"', 'name = "demo-arithmetic'),
        ["invalid TOML", "line 3"],
    ),
    (
        "unknown-provider.toml",
        lambda demo: _edit(demo, 'provider = "fake"', 'provider = "nosuch"'),
        ["models.strong.provider", "'nosuch'", "runtime.endpoints.nosuch"],
    ),
    (
        "bad-fake-option.toml",
        lambda demo: _edit(demo, "skill = 0.85", "skill = 1.5"),
        ["models.strong.options", "skill"],
    ),
    (
        "missing-field.toml",
        lambda demo: _edit(demo, "{{ question }}", "{{ query }}"),
        ["prompts", "'direct'", "query"],
    ),
    (
        "bad-template.toml",
        lambda demo: _edit(demo, "{{ question }}", "{{ question "),
        ["prompts", "'direct'", "syntax"],
    ),
    ("does-not-exist.toml", None, ["file not found"]),
    *(
        (
            f"reserved-header-{header.lower()}.toml",
            # the header name as given, any case: the lean HTTP client writes these itself
            lambda demo, header=header: (
                demo.read_text(encoding="utf-8")
                + f'\n[runtime.endpoints.fake]\nheaders = {{ {header} = "1" }}\n'
            ),
            [f"runtime.endpoints.fake.headers.{header}", "reserved"],
        )
        for header in ("Host", "content-length", "TRANSFER-ENCODING", "Connection")
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), BAD_CONFIGS, ids=[case[0] for case in BAD_CONFIGS]
)
def test_a_bad_config_is_one_error_line_naming_file_and_key(
    demo: Path,
    store: Path,
    invoke: Invoke,
    name: str,
    content: Callable[[Path], str] | None,
    expected: list[str],
) -> None:
    config = demo.parent / name
    if content is not None:
        config.write_text(content(demo), encoding="utf-8")

    line = one_error_line(invoke("run", config, "--store", store))

    assert name in line
    for part in expected:
        assert part in line
    assert not store.exists()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("runtime.max_concurrent_tasks=0", ["runtime.max_concurrent_tasks", "demo.toml"]),
        ("runtime.colour=1", ["runtime.colour", "unknown key"]),
        ("seed", ["--set seed", "KEY=VALUE"]),
        ("runtime.endpoints.fake.headers.Host=x", ["runtime.endpoints.fake.headers.Host"]),
    ],
)
def test_a_bad_override_is_one_error_line(
    demo: Path, store: Path, invoke: Invoke, override: str, expected: list[str]
) -> None:
    line = one_error_line(invoke("run", demo, "--store", store, "--set", override))

    for part in expected:
        assert part in line


def test_until_stage_generate_then_a_plain_run_finishes_without_model_calls(
    demo: Path, run_json: RunJson
) -> None:
    generated = run_json(demo, "--until-stage", "generate")
    finished = run_json(demo)
    again = run_json(demo, "--until-stage", "parse")

    assert generated["completed_through_stage"] == "generate"
    assert generated["model_calls"] == TRIALS
    assert generated["trials"]["scored"] == 0
    assert all(row["n"] == 0 and row["mean"] is None for row in generated["results"])
    assert finished["run_id"] == generated["run_id"]
    assert finished["reused"] is False
    assert finished["model_calls"] == 0
    assert finished["completed_through_stage"] == "score"
    assert finished["trials"]["scored"] == TRIALS
    assert again["reused"] is True


@pytest.mark.parametrize("quiet", [[], ["--quiet"], ["-q"]])
def test_no_progress_bar_when_quiet_or_not_a_terminal(
    demo: Path, store: Path, invoke: Invoke, quiet: list[str]
) -> None:
    result = invoke("run", demo, "--store", store, *quiet)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert f"executed {TRIALS} trials" in result.stdout.splitlines()[0]


def test_progress_on_draws_a_bar_unless_quiet(demo: Path, store: Path, invoke: Invoke) -> None:
    """The control for the test above: the bar does reach stderr when forced on."""
    forced = invoke("run", demo, "--store", store, "--set", 'runtime.progress="on"')
    quiet = invoke("run", demo, "--store", store, "--set", 'runtime.progress="on"', "--quiet")

    assert forced.exit_code == 0, forced.output
    assert any(character in forced.stderr for character in BAR_CHARACTERS)
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""


def test_run_table_says_what_the_invocation_did(demo: Path, store: Path, invoke: Invoke) -> None:
    first = invoke("run", demo, "--store", store)
    second = invoke("run", demo, "--store", store)

    assert first.exit_code == 0, first.output
    assert f"executed {TRIALS} trials ({TRIALS} model calls)" in first.stdout.splitlines()[0]
    assert second.exit_code == 0, second.output
    assert "reused the stored run (0 model calls)" in second.stdout.splitlines()[0]
    assert first.stdout.splitlines()[1:] == second.stdout.splitlines()[1:]

"""`themis report --format md|csv|latex|json`, `--by` and `--output`, and `themis.Reporter`.

The demo is seeded and scripted, so each format is snapshotted (syrupy) once the run's creation
time and the platform-dependent provenance (Python, platform, library versions) are masked.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

import themis
from tests.cli.helpers import Invoke, one_error_line, output_json, trimmed, undated

# Provenance that is the same on every machine (the rest is masked in snapshots).
STABLE_PROVENANCE = ("config_sha256", "themis", "themis_now")


@pytest.fixture
def demo_run(demo: Path, store: Path, invoke: Invoke) -> str:
    ran = output_json(invoke("run", demo, "--store", store, "--json"))
    run_id: str = ran["run_id"]
    return run_id


def _masked_json(data: dict[str, Any]) -> dict[str, Any]:
    provenance = {
        key: value if key in STABLE_PROVENANCE else "<varies>"
        for key, value in data["provenance"].items()
        if key != "config"  # a temporary path
    }
    return {**data, "created_at": "<when>", "provenance": provenance}


@pytest.mark.parametrize("format_", ["md", "csv", "latex"])
def test_text_formats(
    format_: str, demo_run: str, store: Path, invoke: Invoke, snapshot: SnapshotAssertion
) -> None:
    result = invoke("report", demo_run, "--store", store, "--format", format_)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert undated(result.stdout) == snapshot


def test_json_format(
    demo_run: str, store: Path, invoke: Invoke, snapshot: SnapshotAssertion
) -> None:
    data = output_json(invoke("report", demo_run, "--store", store, "--format", "json"))
    assert data["statistics"]["ci_methods"] == {
        "wilson-deff": (
            "Wilson score 95% interval on the effective n = n / design effect (several 0/1 "
            "scores per case, correlated within a case)"
        )
    }
    assert _masked_json(data) == snapshot


def test_csv_holds_every_number_of_the_json(demo_run: str, store: Path, invoke: Invoke) -> None:
    data = output_json(invoke("report", demo_run, "--store", store, "--format", "json"))
    text = invoke("report", demo_run, "--store", store, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(data["results"])
    for row, result in zip(rows, data["results"], strict=True):
        assert row["run_id"] == demo_run
        assert float(row["mean"]) == result["mean"]
        assert (float(row["ci_low"]), float(row["ci_high"])) == (
            result["ci_low"],
            result["ci_high"],
        )
        assert int(row["n"]) == result["n"]
        assert int(row["cache_hits"]) == result["cache_hits"]


def test_by_a_case_field_breaks_rows_down(
    tmp_path: Path, store: Path, invoke: Invoke, snapshot: SnapshotAssertion
) -> None:
    data = tmp_path / "levels.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"q{i}",
                    "question": f"{i} + {i}",
                    "answer": str(2 * i),
                    "difficulty": "hard" if i % 2 else "easy",
                }
            )
            + "\n"
            for i in range(6)
        ),
        encoding="utf-8",
    )
    config = tmp_path / "levels.toml"
    config.write_text(LEVELS_CONFIG, encoding="utf-8")
    ran = output_json(invoke("run", config, "--store", store, "--json"))

    result = invoke(
        "report", ran["run_id"], "--store", store, "--by", "difficulty", "--format", "csv"
    )
    pooled = invoke("report", ran["run_id"], "--store", store, "--by", "model", "--format", "md")

    assert result.exit_code == 0, result.output
    assert result.stdout == snapshot(name="by-difficulty")
    assert pooled.exit_code == 0, pooled.output
    assert "| * | fake | * | exact_match |" in pooled.stdout


def test_a_case_field_named_like_a_column_gets_its_own_header(
    tmp_path: Path, store: Path, invoke: Invoke
) -> None:
    data = tmp_path / "levels.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"{i} + {i}", "answer": str(2 * i), "n": i % 2})
            + "\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )
    config = tmp_path / "levels.toml"
    config.write_text(LEVELS_CONFIG, encoding="utf-8")
    ran = output_json(invoke("run", config, "--store", store, "--json"))

    text = invoke("report", ran["run_id"], "--store", store, "--by", "n", "--format", "csv").stdout

    header, *rows = list(csv.reader(io.StringIO(text)))
    assert len(header) == len(set(header))
    assert header[4] == "case.n"
    assert sorted(row[4] for row in rows) == ["0", "1"]
    assert sum(int(row[header.index("n")]) for row in rows) == 8  # 4 cases x 2 samples


def test_an_unknown_case_field_is_one_error_line(
    demo_run: str, store: Path, invoke: Invoke
) -> None:
    line = one_error_line(invoke("report", demo_run, "--store", store, "--by", "difficulty"))
    assert line == (
        "error: --by: no case of run 'demo-arithmetic' has a field 'difficulty' "
        "(choose from dataset, model, prompt, answer, id, question)"
    )


def test_output_writes_the_format_its_suffix_names(
    demo_run: str, store: Path, invoke: Invoke, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "report.tex"
    target.parent.mkdir()
    result = invoke("report", demo_run, "--store", store, "--output", target)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == f"wrote {target}"
    printed = invoke("report", demo_run, "--store", store, "--format", "latex").stdout
    assert target.read_text(encoding="utf-8") == printed


def test_the_python_api_renders_what_the_cli_prints(
    demo_run: str, store: Path, invoke: Invoke, tmp_path: Path
) -> None:
    reporter = themis.Reporter(demo_run[:8], store)
    for format_ in ("md", "csv", "latex", "json"):
        printed = invoke("report", demo_run, "--store", store, "--format", format_).stdout
        assert reporter.render(format_) == printed
    table = invoke("report", demo_run, "--store", store).stdout
    assert reporter.render("table") == trimmed(table) + "\n"
    assert reporter.report == themis.load_report(demo_run, store)
    saved = reporter.save(tmp_path / "r.md")
    assert saved.read_text(encoding="utf-8") == reporter.render("md")
    by_model = themis.load_report(demo_run, store, by=["model"])
    assert {(row.dataset, row.model, row.prompt) for row in by_model.rows} == {
        ("*", "strong", "*"),
        ("*", "weak", "*"),
    }
    with pytest.raises(themis.ConfigError, match="format: must be one of"):
        reporter.render("pdf")


LEVELS_CONFIG = """
name = "levels"
seed = 3
samples = 2

[[datasets]]
name = "levels"
path = "levels.jsonl"

[[models]]
name = "fake"
provider = "fake"
model = "fake-mid"
options = { skill = 0.6 }

[[prompts]]
name = "direct"
template = "{{ question }}"

[parser]
name = "number"

[[metrics]]
name = "exact_match"
"""


def test_html_is_one_file_that_names_no_other_source(
    demo_run: str, store: Path, invoke: Invoke, tmp_path: Path
) -> None:
    target = tmp_path / "report.html"
    result = invoke("report", demo_run, "--store", store, "--output", target)
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in page  # the page may load nothing
    assert not re.search(r"(src|href)=|https?://|@import|url\(", page)
    assert demo_run in page
    assert page.count('<svg class="forest"') == 2  # one per metric
    assert page.count("<tr>") == 2 + 8 + 288  # two header rows, the report rows, the trials
    printed = invoke("report", demo_run, "--store", store, "--format", "html").stdout
    assert printed == page

"""`themis export-bundle`, `import-bundle`, `batch export|import` and `import-answers`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.app.test_bundles import openai_output
from tests.cli.helpers import Invoke, one_error_line

SMALL = """
name = "small"
seed = 3
samples = 1

[[datasets]]
name = "sums"
cases = [
  { id = "c0", fields = { a = 0 }, expected = "0" },
  { id = "c1", fields = { a = 1 }, expected = "2" },
  { id = "c2", fields = { a = 2 }, expected = "4" },
]

[[models]]
name = "m"
provider = "fake"
model = "fake-model"
options = { skill = 1.0 }

[[prompts]]
name = "p"
template = "{{ a }} + {{ a }} = {{ a * 2 }}"

[parser]
name = "number"

[[metrics]]
name = "exact_match"
"""


@pytest.fixture
def small(tmp_path: Path) -> Path:
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    return config


def test_generation_bundle_moves_a_run_between_stores(
    small: Path, tmp_path: Path, invoke: Invoke, run_json: Callable[..., dict[str, Any]]
) -> None:
    first = run_json(small)
    run_id = first["run_id"]
    exported = invoke("export-bundle", run_id[:8], "generation", tmp_path / "g", "--store",
                      tmp_path / "s.duckdb")  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert (
        exported.stdout == f"exported 3 generation rows of run {run_id[:12]} to {tmp_path / 'g'}\n"
    )
    other = tmp_path / "b.duckdb"
    imported = invoke("import-bundle", tmp_path / "g", "--store", other, "--run", run_id)
    assert imported.stdout == f"imported 3 rows into run {run_id[:12]} (0 already held)\n"
    again = invoke("import-bundle", tmp_path / "g", "--store", other)
    assert again.stdout == f"imported 0 rows into run {run_id[:12]} (3 already held)\n"
    report_a = invoke("report", run_id, "--store", tmp_path / "s.duckdb", "--format", "json")
    resumed = invoke("resume", run_id, "--store", other, "--json")
    assert json.loads(resumed.stdout)["model_calls"] == 0
    report_b = invoke("report", run_id, "--store", other, "--format", "json")
    assert report_a.stdout == report_b.stdout


def test_import_bundle_refuses_another_runs_bundle(
    small: Path, tmp_path: Path, invoke: Invoke, run_json: Callable[..., dict[str, Any]]
) -> None:
    run_id = run_json(small)["run_id"]
    invoke("export-bundle", run_id, "score", tmp_path / "s.jsonl", "--store", tmp_path / "s.duckdb")
    line = one_error_line(
        invoke(
            "import-bundle", tmp_path / "s.jsonl", "--run", "ffff0000", "--store", tmp_path / "x"
        )
    )
    assert line == (
        f"error: the bundle holds score results of run {run_id[:12]}, not of run ffff0000; "
        "import it into its own run"
    )
    assert not (tmp_path / "x").exists()


def test_batch_export_then_import_completes_the_run_with_zero_calls(
    small: Path, tmp_path: Path, invoke: Invoke, run_json: Callable[..., dict[str, Any]]
) -> None:
    store = tmp_path / "s.duckdb"
    exported = invoke("batch", "export", small, tmp_path / "in.jsonl", "--store", store)
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.startswith("wrote 3 pending requests of run ")
    requests = [json.loads(line) for line in (tmp_path / "in.jsonl").read_text().splitlines()]
    (tmp_path / "out.jsonl").write_text(openai_output(requests, fail=1))
    imported = invoke("batch", "import", small, tmp_path / "out.jsonl", "--store", store)
    assert imported.exit_code == 0, imported.output
    lines = imported.stdout.splitlines()
    assert lines[0].startswith("imported 2 answers into run ")
    assert lines[1].startswith("1 requests failed at the provider and stay pending")
    retry = invoke("batch", "export", small, tmp_path / "retry.jsonl", "--store", store)
    assert retry.stdout.startswith("wrote 1 pending requests")
    retried = [json.loads(line) for line in (tmp_path / "retry.jsonl").read_text().splitlines()]
    (tmp_path / "retry-out.jsonl").write_text(openai_output(retried))
    invoke("batch", "import", small, tmp_path / "retry-out.jsonl", "--store", store)
    result = run_json(small)
    assert (result["status"], result["model_calls"]) == ("completed", 0)


def test_import_answers_records_a_jsonl_of_answers(
    small: Path, tmp_path: Path, invoke: Invoke, run_json: Callable[..., dict[str, Any]]
) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "\n".join(json.dumps({"case_id": f"c{i}", "text": str(2 * i)}) for i in range(3)) + "\n"
    )
    store = tmp_path / "s.duckdb"
    imported = invoke("import-answers", small, answers, "--store", store)
    assert imported.stdout.startswith("imported 3 answers into run ")
    result = run_json(small)
    assert (result["model_calls"], result["status"]) == (0, "completed")


def test_import_answers_names_the_bad_line(small: Path, tmp_path: Path, invoke: Invoke) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"case_id": "c0", "text": "0"}\n{oops\n')
    line = one_error_line(invoke("import-answers", small, answers, "--store", tmp_path / "s"))
    assert line.startswith(f"error: {answers}: line 2: invalid JSON")
    assert not (tmp_path / "s").exists()


def test_import_scores_records_evaluations_of_stored_generations(
    small: Path, tmp_path: Path, invoke: Invoke, run_json: Callable[..., dict[str, Any]]
) -> None:
    store = tmp_path / "s.duckdb"
    answers, scores = tmp_path / "answers.jsonl", tmp_path / "scores.jsonl"
    answers.write_text(
        "".join(json.dumps({"case_id": f"c{i}", "text": "0"}) + "\n" for i in range(3))
    )
    scores.write_text(
        "".join(
            json.dumps({"case_id": f"c{i}", "answer": "0", "scores": {"exact_match": 1.0}}) + "\n"
            for i in range(3)
        )
    )
    invoke("import-answers", small, answers, "--store", store)
    imported = invoke("import-scores", small, scores, "--store", store)
    assert imported.stdout.startswith("imported 6 parse and score rows into run ")
    again = invoke("import-scores", small, scores, "--store", store)
    assert again.stdout.endswith("(3 already held)\n")
    result = run_json(small)  # the imported scores (1.0), not the scores the answers earn
    assert (result["model_calls"], result["results"][0]["mean"]) == (0, 1.0)
    scores.write_text(json.dumps({"case_id": "c0", "scores": {"exact_match": 7}}) + "\n")
    line = one_error_line(invoke("import-scores", small, scores, "--store", store))
    assert line == "error: evaluations[0].scores.exact_match: must be in [0, 1], got 7"

"""How run, resume and replay end (docs/reference/exit-codes.md): a run where no trial succeeded
says why and exits 1, `--fail-under` sets the bar for CI, a budget-paused run exits 3 and says how
to continue (also when resumed with the same budget, which makes no call)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import EXAMPLES
from tests.cli.helpers import Invoke, one_error_line, output_json

CONFIG = """
name = "endings"
seed = 3
samples = 1

[[datasets]]
name = "arithmetic"
path = "data/arithmetic.jsonl"
id_field = "id"
expected_field = "answer"

[[models]]
name = "m"
provider = "fake"
model = "fake-m"
options = {options}

[[prompts]]
name = "direct"
template = "Answer with a number only.\\n{{{{ question }}}}"

[parser]
name = "number"

[[metrics]]
name = "exact_match"

[runtime]
generation_retry_attempts = 1      # a scripted failure fails its trial at once
breaker_failure_threshold = 100000
"""


def project(directory: Path, options: str) -> Path:
    shutil.copytree(EXAMPLES / "data", directory / "data")
    config = directory / "endings.toml"
    config.write_text(CONFIG.format(options=options), encoding="utf-8")
    return config


def test_a_run_where_no_trial_succeeded_says_why_and_exits_1(
    invoke: Invoke, tmp_path: Path
) -> None:
    config = project(tmp_path, "{ fail_first_n = 100, status = 401 }")
    store = tmp_path / "s.duckdb"

    result = invoke("run", config, "--store", store)

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "completed" in result.stdout  # the report is still printed
    lines = result.stderr.splitlines()
    run_id = lines[0].split()[1].rstrip(":")
    assert lines[0] == f"run {run_id}: no trial succeeded (24 of 24 failed); the main reasons:"
    assert lines[1].startswith("  24 × auth: HTTP 401")
    assert lines[-1] == (
        f"fix the cause, then attempt them again: themis resume {run_id} --retry-failed"
    )
    again = invoke("run", config, "--store", store, "--json")  # reused: the same ending
    assert again.exit_code == 1
    assert "no trial succeeded" in again.stderr


def test_fail_under_is_the_share_of_trials_that_must_succeed(
    invoke: Invoke, tmp_path: Path
) -> None:
    config = project(tmp_path, "{ failure_rate = 0.5 }")
    store = tmp_path / "s.duckdb"
    ran = invoke("run", config, "--store", store, "--json", "--fail-under", "0.1")
    data = output_json(ran)
    share = (data["trials"]["planned"] - data["trials"]["failed"]) / data["trials"]["planned"]
    assert 0.1 < share < 0.9

    below = invoke("run", config, "--store", store, "--fail-under", "0.9")

    assert below.exit_code == 1
    first = below.stderr.splitlines()[0]
    assert f"({share:.1%}), under --fail-under 0.9; the main reasons:" in first
    assert "× server: scripted failure of fake-m" in below.stderr
    resumed = invoke("resume", data["run_id"][:8], "--store", store, "--fail-under", "0.95")
    assert resumed.exit_code == 1


@pytest.mark.parametrize("value", ["1.5", "-0.1"])
def test_a_fail_under_outside_0_to_1_is_a_usage_error(
    invoke: Invoke, tmp_path: Path, value: str
) -> None:
    config = project(tmp_path, "{}")
    store = tmp_path / "s.duckdb"
    line = one_error_line(invoke("run", config, "--store", store, "--fail-under", value))
    assert line == (
        f"error: --fail-under {float(value):g}: "
        "give the share of trials that must succeed, from 0 to 1"
    )
    assert not (tmp_path / "s.duckdb").exists()


def test_a_budget_paused_run_exits_3_and_stays_paused_without_a_call(
    invoke: Invoke, tmp_path: Path
) -> None:
    config = project(tmp_path, "{ latency_s = 0.01 }")
    store = tmp_path / "s.duckdb"
    budget = [
        "--set", "runtime.model_prices = { m = { input_per_1k = 1.0, output_per_1k = 1.0 } }",
        "--set", "runtime.max_cost_per_run = 0.2",
        "--set", "runtime.max_concurrent_tasks = 2",
    ]  # fmt: skip

    paused = invoke("run", config, "--store", store, "--json", *budget)

    assert paused.exit_code == 3, paused.output
    run_id = output_json_any(paused.stdout)["run_id"][:12]
    assert output_json_any(paused.stdout)["status"] == "paused"
    [line] = paused.stderr.splitlines()
    assert line.startswith(f"run {run_id} paused: its budget (runtime.max_cost_per_run) is spent (")
    assert line.endswith(
        f"; raise it and resume: themis resume {run_id} --set runtime.max_cost_per_run=AMOUNT"
    )
    same = invoke("resume", run_id, "--store", store, "--json")
    assert same.exit_code == 3
    assert output_json_any(same.stdout)["model_calls"] == 0
    assert "is still paused: its budget is spent" in same.stderr
    assert "resuming with the same limit makes no call" in same.stderr
    raised = invoke(
        "resume", run_id, "--store", store, "--set", "runtime.max_cost_per_run=100", "--json"
    )
    assert raised.exit_code == 0, raised.output
    assert output_json_any(raised.stdout)["status"] == "completed"


def output_json_any(stdout: str) -> dict[str, Any]:
    """The JSON a command printed, whatever its exit status."""
    data: dict[str, Any] = json.loads(stdout)
    return data

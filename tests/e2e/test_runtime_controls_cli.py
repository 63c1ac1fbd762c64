"""Runtime controls end to end: the installed `themis` CLI in a subprocess, in real time, with the
scripted `fake` provider's fault options (`fail_first_n`, `status`, `retry_after_s`, `hang_s`,
`outage_*_s`) and runtime settings given with `--set`. Every call is journaled with its time
(`THEMIS_FAKE_JOURNAL`), so what the endpoint saw can be checked.

Times are kept to fractions of a second; tolerances allow for a loaded machine.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import run_themis, themis_env, themis_path

pytestmark = pytest.mark.slow

TIMEOUT_S = 120
SHORT = "What is {{ n }}?"


def _write(directory: Path, options: dict[str, Any], cases: list[tuple[str, str]]) -> Path:
    """A config with one scripted model (`options`) and inline cases `(id, question)`."""
    rows = ",\n  ".join(
        f'{{ id = "{case}", fields = {{ n = "{question}" }}, expected = "1" }}'
        for case, question in cases
    )
    option_text = ", ".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
    config = directory / "controls.toml"
    config.write_text(
        f"""name = "controls"
seed = 1
samples = 1

[[datasets]]
name = "d"
cases = [
  {rows}
]

[[models]]
name = "m"
provider = "fake"
model = "fake-m"
options = {{ {option_text} }}

[[prompts]]
name = "p"
template = "{SHORT}"

[parser]
name = "number"

[[metrics]]
name = "exact_match"
""",
        encoding="utf-8",
    )
    return config


def _cases(count: int) -> list[tuple[str, str]]:
    return [(f"c{i}", str(i)) for i in range(count)]


class Cli:
    """Runs `themis` in `directory` against one store, journaling every model call."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.store = directory / "s.duckdb"
        self.journal = directory / "calls.jsonl"

    def env(self) -> dict[str, str]:
        return themis_env(THEMIS_FAKE_JOURNAL=str(self.journal))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_themis(
            self.directory, *args, "--store", self.store, env=self.env(), timeout=TIMEOUT_S
        )

    def json(self, *args: str, code: int = 0) -> dict[str, Any]:
        """`themis ARGS --json`, asserted to exit `code` (docs/reference/exit-codes.md)."""
        completed = self.run(*args, "--json")
        assert completed.returncode == code, completed.stderr
        data: dict[str, Any] = json.loads(completed.stdout)
        return data

    def calls(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        lines = self.journal.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def calls_by_key(self) -> dict[str, list[float]]:
        grouped: dict[str, list[float]] = defaultdict(list)
        for call in self.calls():
            grouped[call["trial_key"]].append(call["at"])
        return grouped


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _trials(cli: Cli, run_id: str, case: str) -> list[dict[str, Any]]:
    trials: list[dict[str, Any]] = cli.json("inspect", "evaluation", run_id, "--case", case)[
        "trials"
    ]
    return trials


def test_429s_with_retry_after_are_retried_when_the_server_says(cli: Cli) -> None:
    options = {"fail_first_n": 2, "status": 429, "retry_after_s": 0.4}
    config = _write(cli.directory, options, _cases(2))

    result = cli.json("run", str(config), "--set", "runtime.generation_retry_delay=30")

    assert (result["status"], result["trials"]["failed"], result["model_calls"]) == (
        "completed",
        0,
        6,
    )
    for times in cli.calls_by_key().values():
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert len(gaps) == 2
        assert all(0.4 <= gap < 1.4 for gap in gaps), gaps  # the hint, never the 30 s delay
    (trial,) = _trials(cli, result["run_id"], "c0")
    assert trial["generation"]["attempts"] == 3
    assert trial["generation"]["retries"] == [
        {"attempt": n, "kind": "rate_limit", "status": 429, "delay_s": 0.4, "retry_after_s": 0.4}
        for n in (1, 2)
    ]
    table = cli.run("inspect", "evaluation", result["run_id"], "--case", "c0").stdout
    assert "retries" in table  # a column only when some trial has a retry history
    assert table.count("rate_limit 429") == 2


def test_requests_per_minute_are_never_exceeded(cli: Cli) -> None:
    config = _write(cli.directory, {}, _cases(5))
    command = [
        themis_path(),
        "run",
        str(config),
        "--store",
        str(cli.store),
        "--quiet",
        "--set",
        "runtime.provider_rate_limits.fake.requests_per_minute=3",
    ]
    process = subprocess.Popen(
        command,
        cwd=cli.directory,
        env=cli.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(cli.calls()) < 3:
            assert process.poll() is None, "themis exited before its third call"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(1.5)  # the next call may start only 60 s after the first
        assert len(cli.calls()) == 3
        process.send_signal(signal.SIGINT)
        process.wait(timeout=TIMEOUT_S)
    finally:
        process.kill()
        process.wait(timeout=TIMEOUT_S)
    assert process.returncode == 130
    state = cli.json("inspect", "state", _run_id(cli, config))
    assert state["stages"]["generate"]["done"] == 3


def _run_id(cli: Cli, config: Path) -> str:
    """The run id `themis plan` gives `config` (without saving the plan)."""
    run_id: str = cli.json("plan", str(config), "--no-save")["run_id"]
    return run_id


def test_a_request_over_the_token_limit_fails_without_a_call(cli: Cli) -> None:
    config = _write(cli.directory, {}, _cases(2))

    result = cli.json(
        "run",
        str(config),
        "--set",
        "runtime.provider_rate_limits.fake.tokens_per_minute=100",
        code=1,  # no trial succeeded
    )

    assert (result["trials"]["failed"], result["model_calls"]) == (2, 0)
    assert cli.calls() == []
    state = cli.json("inspect", "state", result["run_id"])
    assert [(f["kind"], f["count"]) for f in state["failures"]] == [("token_limit", 2)]


def test_an_outage_opens_the_breaker_and_the_run_completes_after_it(cli: Cli) -> None:
    options = {"outage_start_s": 0.0, "outage_end_s": 1.0, "status": 503}
    config = _write(cli.directory, options, _cases(4))

    result = cli.json(
        "run",
        str(config),
        "--set",
        "runtime.provider_concurrency.fake=1",
        "--set",
        "runtime.breaker_failure_threshold=2",
        "--set",
        "runtime.breaker_min_calls=2",
        "--set",
        "runtime.breaker_recovery_timeout=0.6",
        "--set",
        "runtime.generation_retry_attempts=6",
        "--set",
        "runtime.generation_retry_delay=0.05",
    )

    assert (result["status"], result["trials"]["failed"]) == ("completed", 0)
    times = sorted(call["at"] for call in cli.calls())
    during = [at for at in times if at - times[0] < 1.0]
    # Two failures open the breaker at once; one probe at ~0.6 s fails; the next (~1.2 s) works.
    assert len(during) <= 2 + 1, [round(at - times[0], 3) for at in times]
    assert result["model_calls"] == len(times) == len(during) + 4


def test_a_hung_call_times_out_and_is_retried(cli: Cli) -> None:
    config = _write(cli.directory, {"hang_s": 60.0}, _cases(1))
    started = time.monotonic()

    result = cli.json("run", str(config), "--set", "runtime.call_timeout=0.3")

    assert time.monotonic() - started < 30
    assert (result["status"], result["model_calls"], result["trials"]["failed"]) == (
        "completed",
        2,
        0,
    )
    (trial,) = _trials(cli, result["run_id"], "c0")
    (retry,) = trial["generation"]["retries"]
    assert (retry["kind"], retry["status"]) == ("timeout", None)


def test_idle_timeout_cancels_a_stuck_run(cli: Cli) -> None:
    config = _write(cli.directory, {"hang_s": 60.0}, _cases(3))

    result = cli.json(
        "run",
        str(config),
        "--set",
        "runtime.call_timeout=50",
        "--set",
        "runtime.idle_timeout=0.3",
        "--set",
        "runtime.generation_retry_delay=0.05",
    )

    assert (result["status"], result["model_calls"], result["trials"]["failed"]) == (
        "completed",
        6,
        0,
    )
    state = cli.json("inspect", "state", result["run_id"])
    assert state["recovered"] == 3


PRICE = ["--set", "runtime.model_prices.m = { input_per_1k = 1000.0, output_per_1k = 0.0 }"]


def test_a_trial_over_its_cost_limit_fails(cli: Cli) -> None:
    # The scripted model reports one input token per prompt word: a cost of 3 or of 9 here.
    cases = [("short", "1"), ("long", "1 2 3 4 5 6 7")]
    config = _write(cli.directory, {}, cases)

    result = cli.json("run", str(config), *PRICE, "--set", "runtime.max_cost_per_trial=5")

    assert result["trials"]["failed"] == 1
    (trial,) = _trials(cli, result["run_id"], "long")
    assert trial["failure"]["kind"] == "cost_limit"
    state = cli.json("inspect", "state", result["run_id"])
    assert state["spend"]["spent"] == pytest.approx(12.0)


def test_a_run_budget_pauses_the_run_and_resume_with_a_raised_limit_finishes(cli: Cli) -> None:
    # Each call costs 3 and is estimated at 10 (its prompt tokens at the input price): with 12
    # to spend, the first call starts and the second would not fit.
    config = _write(cli.directory, {}, _cases(4))
    budget = [*PRICE, "--set", "runtime.max_cost_per_run=12", "--set", "runtime.progress=off"]

    paused = cli.run("run", str(config), *budget, "--set", "runtime.max_concurrent_tasks=1")

    assert paused.returncode == 3, paused.stderr  # paused by its budget
    assert "paused: its budget (runtime.max_cost_per_run) is spent" in paused.stderr
    run_id = _run_id(cli, config)
    state = cli.json("inspect", "state", run_id)
    assert state["status"] == "paused"
    assert state["pause"] == {"reason": "cost_limit", "spent": 3.0}
    assert state["spend"]["spent"] == 3.0
    assert len(cli.calls()) == 1

    resumed = cli.json("resume", run_id[:12], "--set", "runtime.max_cost_per_run=100")

    assert (resumed["status"], resumed["model_calls"], resumed["trials"]["scored"]) == (
        "completed",
        3,
        4,
    )
    assert cli.json("inspect", "state", run_id)["spend"]["spent"] == 12.0


def test_preflight_is_summarised_before_the_run_and_fails_requests_over_the_window(
    cli: Cli,
) -> None:
    cases = [("short", "1"), ("long", "9" * 200)]
    config = _write(cli.directory, {}, cases)

    completed = cli.run("run", str(config), "--set", "runtime.context_windows.m=300", "--json")

    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.startswith(
        "preflight: model 'm' (context window 300): 1 of 2 requests over the warning share "
        "(80%), 1 over the error share (100%) fail without a call"
    )
    result = json.loads(completed.stdout)
    assert (result["trials"]["failed"], result["model_calls"]) == (1, 1)
    (trial,) = _trials(cli, result["run_id"], "long")
    assert (trial["failure"]["kind"], trial["failure"]["attempts"]) == ("preflight", 0)
    assert cli.json("inspect", "state", result["run_id"])["preflight_warnings"] == 1
    quiet = cli.run("run", str(config), "--json")  # no context windows: no summary
    assert quiet.stderr == ""

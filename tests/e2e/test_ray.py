"""The Ray executor end to end: the real `themis` console script against a real Ray cluster.

One cluster per module: `ray start --head --block` on 127.0.0.1 with 2 CPUs, its workers given a
TMPDIR and a fake-provider journal of their own, so the test sees that model calls and code
execution happened in Ray's worker processes and not in the CLI's. Each config runs locally and
on Ray: same `run_id`, same events per trial (up to timing), identical report. Then a Ray worker
process is killed mid-run (a sandboxing task's, then the model host actor's): the run completes
with every trial accounted for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pytest
import trio
from attrs import frozen

import themis
import themis.adapters.ray.models as ray_models
import themis.adapters.ray.sandbox as ray_sandbox
from tests.adapters.test_ray_model_host import a_request
from tests.cli_process import json_stdout, run_themis, themis_env, themis_json, themis_path
from tests.contract.test_sandbox_contract import LIMITS, IsolationContract
from tests.servers.subprocess_server import free_port
from themis.core.execution import CommandOutcome, SandboxCommand
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest
from themis.core.spec import SandboxLimits
from themis.ports.sandbox import SandboxPort

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.toml"
HUMANEVAL = REPO / "examples" / "humaneval.toml"
TIMEOUT_S = 300
# A slice of HumanEval: 6 problems x 2 samples, right with probability 0.6, a slow second stage
# (so that executions are under way long enough to kill a worker among them).
HUMANEVAL_SLICE = (
    "datasets.0.limit=6",
    "samples=2",
    "pass_at_k=[1, 2]",
    'models.0.options={answer_field="canonical_solution", skill=0.6}',
    'metrics.0.rules=[{stage=1, command="python3 -m py_compile solution.py"}, '
    '{stage=2, command="sleep 0.3 && python3 solution.py"}]',
)
# Event fields that time things (or name a temporary workspace): they differ between any two runs.
TIMING = {"at", "latency_s", "duration_s"}


@frozen
class Cluster:
    address: str
    workers_tmp: Path  # the TMPDIR of Ray's worker processes (not the CLI's)
    journal: Path  # where the fake provider journals its calls in Ray's workers


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's sockets live under it
    workers_tmp = base / "tmp"
    workers_tmp.mkdir()
    journal = base / "journal.jsonl"
    port = free_port()
    env = themis_env(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        TMPDIR=str(workers_tmp),
        THEMIS_FAKE_JOURNAL=str(journal),
    )
    ray = Path(sys.executable).parent / "ray"
    command = [
        str(ray), "start", "--head", "--block", f"--port={port}",
        "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={base / 'session'}",
    ]  # fmt: skip
    log_path = base / "ray.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while b"Ray runtime started" not in log_path.read_bytes():
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "Ray did not start in time"
            time.sleep(0.2)
        yield Cluster(f"127.0.0.1:{port}", workers_tmp, journal)
    finally:
        process.send_signal(signal.SIGTERM)  # `--block` stops the processes it started
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything left of this cluster's session
        process.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_driver(cluster: Cluster) -> Iterator[None]:
    """This process connected to the cluster (as a notebook's `ray.init` would)."""
    import ray

    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        if before is None:
            del os.environ["RAY_AUTH_MODE"]
        else:
            os.environ["RAY_AUTH_MODE"] = before


def _cli_env() -> dict[str, str]:
    return themis_env(RAY_AUTH_MODE="disabled", without=("THEMIS_FAKE_JOURNAL", "RAY_ADDRESS"))


def _on_ray(cluster: Cluster) -> tuple[str, ...]:
    return ('runtime.executor="ray"', f'runtime.ray_address="{cluster.address}"')


def _run_command(config: Path, store: Path, sets: Sequence[str]) -> list[str]:
    flags = [part for override in sets for part in ("--set", override)]
    return [themis_path(), "run", str(config), "--store", str(store), "--json", "--quiet", *flags]


def _report(cwd: Path, store: Path, run_id: str) -> dict[str, Any]:
    report: dict[str, Any] = themis_json(
        cwd, "report", run_id, "--store", store, "--format", "json", env=_cli_env()
    )
    del report["created_at"]
    return report


def _run(
    cwd: Path, config: Path, store: Path, sets: Sequence[str], journal: Path | None = None
) -> dict[str, Any]:
    """`themis run` as a user types it; `journal`: where the CLI's own fake calls are journaled."""
    env = _cli_env() if journal is None else {**_cli_env(), "THEMIS_FAKE_JOURNAL": str(journal)}
    completed = run_themis(cwd, *_run_command(config, store, sets)[1:], env=env, timeout=600)
    ran = json_stdout(completed)
    assert ran["status"] == "completed"
    on_ray = "executor: ray: model calls and code execution run on the Ray cluster at 127.0.0.1:"
    assert (on_ray in completed.stderr) == any("executor" in text for text in sets)
    return _report(cwd, store, ran["run_id"])


def _trial_events(store: Path) -> Counter[str]:
    """Every event of a trial, without the fields that time it, as a multiset."""
    with duckdb.connect(str(store), read_only=True) as connection:
        rows = connection.execute(
            "SELECT kind, trial_key, payload FROM events WHERE trial_key IS NOT NULL"
        ).fetchall()
    return Counter(
        json.dumps([kind, key, _untimed(json.loads(payload))]) for kind, key, payload in rows
    )


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _untimed(item) for key, item in value.items() if key not in TIMING}
    if isinstance(value, list):
        return [_untimed(item) for item in value]
    return value


def _journal_lines(cluster: Cluster) -> int:
    return len(cluster.journal.read_text().splitlines()) if cluster.journal.exists() else 0


@contextmanager
def _seen_while_running(directory: Path, pattern: str) -> Iterator[set[str]]:
    """The names matching `pattern` that appeared in `directory` while the block ran (polled)."""
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            seen.update(path.name for path in directory.glob(pattern))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def _cluster_processes(cluster: Cluster, title: str) -> list[int]:
    """The pids of this cluster's worker processes whose title starts with `title`."""
    marker = f"TMPDIR={cluster.workers_tmp}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(title.encode()) and marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def demo_local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    cwd = tmp_path_factory.mktemp("demo-local")
    store = cwd / "local.duckdb"
    return store, _run(cwd, DEMO, store, ())


@pytest.fixture(scope="module")
def humaneval_local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    cwd = tmp_path_factory.mktemp("humaneval-local")
    store = cwd / "local.duckdb"
    return store, _run(cwd, HUMANEVAL, store, HUMANEVAL_SLICE)


def test_the_demo_on_ray_gives_the_local_run_and_report(
    tmp_path: Path, cluster: Cluster, demo_local: tuple[Path, dict[str, Any]]
) -> None:
    local_store, local = demo_local
    calls_before = _journal_lines(cluster)
    store = tmp_path / "ray.duckdb"

    on_ray = _run(tmp_path, DEMO, store, _on_ray(cluster))

    assert on_ray == local  # the same run_id, trials and results: an identical report
    assert _trial_events(store) == _trial_events(local_store)
    # The 288 calls were made by the model host in a Ray worker (whose journal this is).
    assert _journal_lines(cluster) - calls_before == local["trials"]["planned"] == 288


def test_code_execution_on_ray_gives_the_local_run_and_report(
    tmp_path: Path, cluster: Cluster, humaneval_local: tuple[Path, dict[str, Any]]
) -> None:
    local_store, local = humaneval_local
    store = tmp_path / "ray.duckdb"

    with _seen_while_running(cluster.workers_tmp, "themis-sandbox-*") as workspaces:
        on_ray = _run(tmp_path, HUMANEVAL, store, (*HUMANEVAL_SLICE, *_on_ray(cluster)))

    assert on_ray == local
    rows = {row["metric"]: row for row in local["results"]}
    assert 0.0 < rows["execution"]["mean"] < 1.0  # wrong answers really fail when run
    assert _trial_events(store) == _trial_events(local_store)
    # The candidates ran in Ray's workers: their workspaces were under the workers' TMPDIR.
    assert workspaces


def test_a_sandboxing_worker_killed_mid_run_loses_no_trial(
    tmp_path: Path, cluster: Cluster, humaneval_local: tuple[Path, dict[str, Any]]
) -> None:
    _, local = humaneval_local
    store = tmp_path / "killed.duckdb"
    command = _run_command(HUMANEVAL, store, (*HUMANEVAL_SLICE, *_on_ray(cluster)))
    with (tmp_path / "run.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=_cli_env(), stdout=log)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not (running := _cluster_processes(cluster, "ray::run_in_worker")):
                assert process.poll() is None, "the run ended before a worker could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            os.kill(running[0], signal.SIGKILL)
            assert process.wait(timeout=TIMEOUT_S) == 0
        finally:
            process.kill()
    ran = json.loads((tmp_path / "run.log").read_text())

    # The lost candidate ran again elsewhere: every trial scored, the report the local one's.
    assert _report(tmp_path, store, ran["run_id"]) == local


def test_the_model_host_killed_mid_run_retries_its_calls(
    tmp_path: Path, cluster: Cluster, demo_local: tuple[Path, dict[str, Any]]
) -> None:
    _, local = demo_local
    store = tmp_path / "killed.duckdb"
    slow = (  # latency is runtime: the same run_id, calls in flight for long enough to kill
        "models.0.options={skill=0.85, latency_s=0.2}",
        "models.1.options={skill=0.55, latency_s=0.2}",
    )
    command = _run_command(DEMO, store, (*slow, *_on_ray(cluster)))
    calls_before = _journal_lines(cluster)
    with (tmp_path / "run.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=_cli_env(), stdout=log)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while _journal_lines(cluster) - calls_before < 40:  # well under way
                assert process.poll() is None, "the run ended before its host could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            hosts = _cluster_processes(cluster, "ray::ModelHost")
            assert len(hosts) == 1
            os.kill(hosts[0], signal.SIGKILL)
            assert process.wait(timeout=TIMEOUT_S) == 0
        finally:
            process.kill()
    ran = json.loads((tmp_path / "run.log").read_text())
    report = _report(tmp_path, store, ran["run_id"])

    assert ran["run_id"] == local["run_id"]
    # Every trial accounted for, with the same answers; the lost calls are retries on record.
    assert report["trials"]["scored"] == report["trials"]["planned"] == 288
    assert report["trials"]["failed"] == 0
    assert report["trials"]["retried"] > 0
    assert [row["mean"] for row in report["results"]] == [row["mean"] for row in local["results"]]
    with duckdb.connect(str(store), read_only=True) as connection:
        kinds = connection.execute("SELECT DISTINCT error_kind FROM retries").fetchall()
    assert kinds == [("worker_lost",)]


def test_a_queued_run_on_ray_is_executed_there_by_a_worker(
    tmp_path: Path, cluster: Cluster, demo_local: tuple[Path, dict[str, Any]]
) -> None:
    """A worker honours the runtime of the run it takes (ADR 0031): the executor included."""
    local_store, local = demo_local
    calls_before = _journal_lines(cluster)
    store = tmp_path / "queued.duckdb"
    flags = [part for override in _on_ray(cluster) for part in ("--set", override)]
    submit = [themis_path(), "submit", str(DEMO), "--store", str(store), *flags]
    submitted = subprocess.run(submit, env=_cli_env(), capture_output=True, text=True, check=False)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == local["run_id"]
    worker = [themis_path(), "worker", "--store", str(store), "--once"]
    worked = subprocess.run(
        worker, env=_cli_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert worked.returncode == 0, worked.stderr
    assert _report(tmp_path, store, local["run_id"]) == local
    assert _trial_events(store) == _trial_events(local_store)
    assert _journal_lines(cluster) - calls_before == 288  # the calls were made on the cluster


def test_the_python_api_runs_on_ray_too(
    tmp_path: Path,
    cluster: Cluster,
    demo_local: tuple[Path, dict[str, Any]],
    ray_driver: None,
) -> None:
    _, local = demo_local
    calls_before = _journal_lines(cluster)
    store = tmp_path / "api.duckdb"

    experiment = themis.Experiment.from_file(DEMO)
    result = experiment.run(store, executor="ray", ray_address=cluster.address)

    assert result.run_id == local["run_id"]
    assert _report(tmp_path, store, result.run_id) == local
    assert _journal_lines(cluster) - calls_before == 288  # called from the cluster's workers


class TestRaySandbox(IsolationContract):
    """The sandbox contract, each run a task on the cluster (this process its driver)."""

    @pytest.fixture
    def sandbox(self, ray_driver: None) -> SandboxPort:
        return ray_sandbox.RaySandbox(LIMITS, (), 2)

    def limited(self, sandbox: SandboxPort, limits: SandboxLimits) -> SandboxPort:
        return ray_sandbox.RaySandbox(limits, (), 2)

    def test_files_land_in_a_fresh_workspace_that_is_removed_after(
        self, sandbox: SandboxPort
    ) -> None:
        # The flow runs where the task does: what it saw comes back in its result.
        def flow(workspace: str) -> Any:
            first = yield SandboxCommand("pwd; cat pkg/a.txt; ls -A", 5)
            return workspace, first

        workspace, first = sandbox.run({"pkg/a.txt": "héllo\n"}, flow)
        assert isinstance(first, CommandOutcome)
        assert first.stdout == f"{workspace}\nhéllo\npkg\n"
        assert not Path(workspace).exists()  # this cluster's node is this machine
        again, _ = sandbox.run({}, flow)
        assert again != workspace


def test_judge_calls_on_ray_give_the_local_run_and_report(tmp_path: Path, cluster: Cluster) -> None:
    """Judge calls go through the same hosted models (the judges' providers are hosted too)."""
    judged = REPO / "examples" / "judge.toml"
    local_store = tmp_path / "local.duckdb"
    local_journal = tmp_path / "local-calls.jsonl"
    local = _run(tmp_path, judged, local_store, (), journal=local_journal)
    calls_before = _journal_lines(cluster)
    store = tmp_path / "ray.duckdb"

    on_ray = _run(tmp_path, judged, store, _on_ray(cluster))

    assert on_ray == local
    assert _trial_events(store) == _trial_events(local_store)
    with duckdb.connect(str(store), read_only=True) as connection:
        (judge_events,) = connection.execute(
            "SELECT count(*) FROM events WHERE kind = 'judge_completed'"
        ).fetchone() or (0,)
    assert judge_events > 0
    # Every call the local run made in its own process, the judges' and retries included, was
    # made in the cluster's model host instead.
    local_calls = len(local_journal.read_text().splitlines())
    assert local_calls >= on_ray["trials"]["planned"] + judge_events
    assert _journal_lines(cluster) - calls_before == local_calls


def _closing_model(closed: Path, close_s: float) -> Any:
    """A model factory for a `ModelHost`, pickled by value: its model answers "answer" and,
    when closed, writes `closed` after `close_s` seconds."""

    class Model:
        async def generate(self, request: ModelRequest) -> ModelResponse:
            return ModelResponse(text="answer")

        def close(self) -> None:
            time.sleep(close_s)
            closed.write_text("closed")

    return Model


def test_hosted_models_close_their_hosts_on_exit(tmp_path: Path, ray_driver: None) -> None:
    # Ending the hosts with `ray.kill` alone never called `ModelHost.close`: their models'
    # connections were dropped with the process instead of being closed.
    closed = tmp_path / "closed"
    factory = _closing_model(closed, close_s=0.0)
    with ray_models.hosted_models(
        {"p": (factory, None)}, concurrency=2, call_timeout=5.0
    ) as hosted:
        assert trio.run(hosted["p"].generate, a_request()) == ModelResponse(text="answer")
        assert not closed.exists()
    assert closed.read_text() == "closed"


def test_hosted_models_end_a_host_whose_close_does_not_answer(
    tmp_path: Path, ray_driver: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from ray.exceptions import RayActorError

    monkeypatch.setattr(ray_models, "CLOSE_PATIENCE_S", 1.0)
    closed = tmp_path / "closed"
    factory = _closing_model(closed, close_s=600.0)
    started = time.monotonic()
    with ray_models.hosted_models(
        {"p": (factory, None)}, concurrency=2, call_timeout=5.0
    ) as hosted:
        assert trio.run(hosted["p"].generate, a_request()) == ModelResponse(text="answer")
        host = hosted["p"]._host
    assert time.monotonic() - started < 120
    with pytest.raises(RayActorError):
        ray.get(host.ready.remote(), timeout=60)
    assert not closed.exists()

"""Code-execution throughput on Ray with 1 and 2 worker processes, beside the local executor.

A slice of `examples/humaneval.toml` (the scripted model answering every canonical solution, so
both validation stages of every candidate really run) is executed end to end through
`Experiment.run`: locally, then with `executor = "ray"` on a local Ray started here with
`num_cpus` = 1 and then 2 (each sandboxed run is a task reserving one CPU, so that many worker
processes execute candidates at once). The driver keeps as many executions in flight as there
are worker processes (locally: 1, then 2), so every setting runs the same number at once: on a
machine shared with other work, more processes would also take a larger share of its CPUs.
Each setting runs a warm-up slice first (Ray starts its worker processes lazily), then the
measured one, on an in-memory store.

    RAY_AUTH_MODE=disabled python bench/ray_codeexec.py [--problems N] [--samples K]

Prints, per setting: executions, wall seconds, executions per second, this process's CPU
seconds; for Ray also the cluster's start-up seconds and its idle resident memory (every
process of the session). The load average is printed too: on a shared machine wall time is
noisy, CPU seconds less so.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import ray

import themis

ROOT = Path(__file__).resolve().parents[1]


def _experiment(problems: int, samples: int, slots: int) -> themis.Experiment:
    overrides = [
        f"datasets.0.limit={problems}",
        f"samples={samples}",
        "pass_at_k=[1]",
        f"runtime.stage_concurrency={{ score = {slots} }}",
        "runtime.progress='off'",
    ]
    return themis.Experiment.from_file(ROOT / "examples/humaneval.toml", overrides=overrides)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(label: str, size: tuple[int, int], slots: int, **runtime: str) -> None:
    """Run the slice of `size` (problems, samples) with `slots` executions in flight."""
    problems, samples = size
    _experiment(4, 1, slots).run("memory", **runtime)  # warm-up: worker processes, imports
    experiment = _experiment(problems, samples, slots)
    executions = problems * samples + problems  # every sample, plus each problem's reduced one
    wall, cpu = time.perf_counter(), _cpu()
    result = experiment.run("memory", **runtime)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    assert result.status == "completed", result.status
    print(
        f"{label:<22} executions {executions:4d}  wall {wall:6.2f} s  "
        f"{executions / wall:6.2f} exec/s  driver CPU {cpu:5.2f} s  load {_load()}",
        flush=True,
    )


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _session_rss_mib() -> float:
    """The resident memory of every process of this Ray session: those naming its session
    directory (GCS, raylet, monitors, agents) and their children (the `ray::` workers)."""
    from ray._private import worker

    session = Path(worker._global_node.get_session_dir_path()).name.encode()
    processes = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                status = (entry / "status").read_text()
            except OSError:
                continue
            processes[int(entry.name)] = (cmdline, status)
    members = {pid for pid, (cmdline, _) in processes.items() if session in cmdline}
    children = {pid for pid, (_, status) in processes.items() if _field(status, "PPid") in members}
    return sum(_field(processes[pid][1], "VmRSS") for pid in members | children) / 1024


def _field(status: str, name: str) -> int:
    for line in status.splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--samples", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    print(f"cores {os.cpu_count()}, load at start {_load()}")
    size = (args.problems, args.samples)
    for slots in (1, 2):
        _measure(f"local, {slots} in flight", size, slots)
    for cpus in (1, 2):
        started = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=cpus,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
        )
        start_s = time.perf_counter() - started
        time.sleep(5)  # settle before reading the idle footprint
        idle = _session_rss_mib()
        print(f"ray num_cpus={cpus}: start {start_s:.1f} s, idle RSS {idle:.0f} MiB (session)")
        _measure(f"ray, {cpus} worker(s)", size, cpus, executor="ray")
        ray.shutdown()


if __name__ == "__main__":
    main()

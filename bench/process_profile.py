"""Where a whole `themis run` process's CPU goes, by phase and by thread.

`themis run` of `bench/cli_process.py`'s N-case config (DuckDB store) runs in a child process
under py-spy (`py-spy record --threads --format raw`; py-spy is not a dependency: install it
into your own venv); the child reports its CPU seconds on the main thread and on all others.
Each thread's samples are then shared out by stack, the phase named by the first rule below
that matches (outer phases first, then the innermost frame of the run), and scaled to that
thread's CPU: µs of CPU per trial per phase. py-spy samples a thread whenever it is not idle,
so under load a share is of the time a thread ran or waited to run (or for the GIL).

With `--gil`, py-spy keeps only the samples of the thread holding the GIL (`--gil`): each
thread's samples over the sampling rate are the seconds it held the GIL, by phase, where a share
of its CPU is not (DuckDB's insert and commit run mostly without it, beside the other thread).

Usage: `python bench/process_profile.py [--gil] [N]` (default 100,000). Prints the load average.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average, write_config

# Phases outside the run: the first whose pattern is anywhere on the stack.
OUTER = [
    ("import", r"_find_and_load \("),
    ("compile (run_id: identity of every case)", r"compile_run \("),
    ("config: read the dataset, check, build the spec", r"load_config \(|from_file \("),
    ("snapshot (save_snapshot: the spec, every case)", r"save_snapshot \("),
    ("final checkpoint (remember)", r"remember \("),
    ("places (save_places)", r"save_places \("),
    ("report (build_report)", r"build_report \("),
    ("reuse lookup (find_reusable)", r"find_reusable \("),
]
# Inside the run: the innermost frame that matches one of these names the phase.
INNER = [
    ("writer: encode events", r"encode_event|codec\.py"),
    ("writer: DuckDB insert", r"append \(themis/adapters/stores/duckdb\.py"),
    ("writer: DuckDB commit", r"_transaction \(themis/adapters/stores/duckdb\.py"),
    ("periodic checkpoint", r"save_checkpoint \(|_maybe_checkpoint"),
    ("planning: plan()", r"^plan \(themis/core/planner"),
    ("planning: pending/tap", r"^(pending|tap) \(themis/core/planner"),
    ("model: ScriptedModel", r"themis/adapters/models/scripted"),
    ("parse", r"parse_answer|_parsed \("),
    ("score", r"score_now|CandidateScorer"),
    ("fold: Projection.apply", r"apply \(themis/core/state"),
    ("writer task: batching", r"themis/app/execution/writer\.py"),
    (
        "model caller (calls, watch, gates)",
        r"execution/calls\.py|execution/watch\.py|provider_gates",
    ),
    ("trial runner (trials.py)", r"themis/app/execution/trials\.py"),
    ("interpreter (dispatch, deliver)", r"execution/interpreter\.py|execution/limiters\.py"),
    ("progress, live record", r"execution/live\.py|live_progress|telemetry"),
    ("trio scheduler, thread hand-off", r"trio/|outcome/"),
]
RATE = 200  # samples a second
IDLE = re.compile(r"_thread_cache\.py:211\)")  # a trio worker thread waiting for a job


def classify(frames: list[str]) -> str:
    joined = ";".join(frames)
    for label, pattern in OUTER:
        if re.search(pattern, joined):
            return label
    for frame in reversed(frames):
        for label, pattern in INNER:
            if re.search(pattern, frame):
                return label
    if "themis/adapters/stores" in joined:
        return "store: open, snapshot"
    return "other (CLI, trio start-up, exit)"


def child(config: str, store: str, out: str) -> None:
    """`themis run CONFIG` in this process; its CPU seconds by thread written to `out`."""
    from themis.app.cli import main as cli

    sys.argv = ["themis", "run", config, "--store", store, "--json", "--quiet"]
    with contextlib.suppress(SystemExit):
        cli()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total, main_cpu = usage.ru_utime + usage.ru_stime, time.thread_time()
    Path(out).write_text(json.dumps({"main": main_cpu, "other": total - main_cpu}))


def shares(profile: Path) -> collections.Counter[tuple[str, str]]:
    samples: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in profile.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        thread, _, rest = stack.partition(";")
        frames = rest.split(";")
        if IDLE.search(frames[-1]):
            continue
        which = "main" if "MainThread" in thread else "other"
        samples[(which, classify(frames))] += int(count)
    return samples


def print_gil_held(
    samples: collections.Counter[tuple[str, str]], cpu: dict[str, float], per_trial: float
) -> None:
    """Each thread's GIL-held time (its samples over `RATE`) beside its CPU, by phase."""
    for which in ("main", "other"):
        held = sum(count for (thread, _), count in samples.items() if thread == which) / RATE
        threads = "main thread" if which == "main" else "other threads"
        print(
            f"{threads}: GIL held {held * per_trial:.1f} µs/trial"
            f" (CPU {cpu[which] * per_trial:.1f})"
        )
        for (thread, label), count in samples.most_common():
            if thread == which:
                print(f"  {label:<48} {count / RATE * per_trial:>6.1f}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
        return
    gil = "--gil" in sys.argv
    numbers = [arg for arg in sys.argv[1:] if arg != "--gil"]
    n = int(numbers[0]) if numbers else 100_000
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(spy):
        raise SystemExit("py-spy is not installed: pip install py-spy into this venv")
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), n)
        profile, cpu_file = Path(folder) / "profile.txt", Path(folder) / "cpu.json"
        print(f"`themis run` of {n:,} trials under py-spy (load average {load_average()})")
        spying = [spy, "record", "--threads", "--nonblocking", "--rate", str(RATE)]
        spying += ["--format", "raw", *(["--gil"] if gil else [])]
        store = Path(folder) / "run.duckdb"
        child_argv = [sys.executable, __file__, "--child", str(config), str(store), str(cpu_file)]
        subprocess.run(
            [*spying, "-o", str(profile), "--", *child_argv],
            check=True,
            capture_output=True,
        )
        cpu = json.loads(cpu_file.read_text())
        samples = shares(profile)
    per_trial = 1e6 / n
    if gil:
        print_gil_held(samples, cpu, per_trial)
        return
    for which in ("main", "other"):
        total = sum(count for (thread, _), count in samples.items() if thread == which)
        threads = "main thread" if which == "main" else "other threads"
        print(f"{threads}: {cpu[which] * per_trial:.1f} µs/trial")
        for (thread, label), count in samples.most_common():
            if thread == which:
                print(f"  {label:<48} {count / total * cpu[which] * per_trial:>6.1f}")


if __name__ == "__main__":
    main()

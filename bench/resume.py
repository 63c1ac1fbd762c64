"""Resuming a completed run, with projection checkpoints: how long "nothing to do" takes.

Builds and runs an N-trial experiment (default 100,000: 1 dataset × 1 scripted model with no
latency × 1 prompt × 1 sample, 2 metrics; 3 events per trial) in a temporary DuckDB file, then,
each in a fresh process:

- `reuse`: `Experiment.run` on the completed run (opening the store included; compiling the
  experiment is timed apart), which must decide "nothing to do" in well under a second;
- `load`: the full state from the checkpoint (`load_state`) against folding every event of the
  log, and the checkpoint codec alone (encode + decode of that state) with its size.

It also times the run itself with the default `checkpoint_interval` and with 0 (checkpoint only
at the end), to show what periodic checkpoints cost.

By default (without `--in-process`) it measures what a user waits for instead, each a whole
process: `themis run CONFIG` on a new store, then on the completed run `themis run CONFIG`
(the same config) and `themis resume RUN`, ROUNDS times each (median; highest peak RSS), on
`bench/cli_process.py`'s config. Usage: `python bench/resume.py [--in-process] [N [ROUNDS]]`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N = 100_000
ROUNDS = 3


def experiment(n: int) -> Any:
    from themis import Experiment
    from themis.core.spec import (
        Case,
        DatasetSpec,
        ExperimentSpec,
        MetricSpec,
        ModelSpec,
        ParserSpec,
        PromptSpec,
    )

    cases = [
        Case(id=str(i), fields={"question": f"What is {i} + 1?"}, expected=str(i + 1))
        for i in range(n)
    ]
    spec = ExperimentSpec(
        name=f"resume-{n}",
        seed=1,
        samples=1,
        datasets=[DatasetSpec(name="synthetic", cases=cases)],
        models=[ModelSpec(name="fake", model="fake", options={"skill": 0.7})],
        prompts=[PromptSpec(name="p", template="{{ question }}")],
        parser=ParserSpec(name="number"),
        metrics=[MetricSpec(name="numeric_match"), MetricSpec(name="exact_match")],
    )
    return Experiment.from_spec(spec)


def build(n: int, store: Path, interval: int) -> dict[str, Any]:
    exp = experiment(n)
    started = time.perf_counter()
    result = exp.run(store, max_concurrent_tasks=256, checkpoint_interval=interval)
    assert result.report.scored + result.report.failed == n, result.report
    return {"run_s": time.perf_counter() - started}


def reuse(n: int, store: Path) -> dict[str, Any]:
    import themis  # noqa: F401  (imports are not what is measured)

    started = time.perf_counter()
    exp = experiment(n)
    compiled = time.perf_counter()
    result = exp.run(store)
    done = time.perf_counter()
    assert result.reused, result
    assert result.model_calls == 0, result
    assert result.report.planned == n
    return {"compile_s": compiled - started, "reuse_s": done - compiled}


def load(n: int, store_path: Path) -> dict[str, Any]:
    from themis.adapters.checkpoint_codec import decode_checkpoint, encode_checkpoint
    from themis.adapters.stores.duckdb import DuckDBStore
    from themis.app.usecases.runs import load_state
    from themis.core.state import project

    run_id = experiment(n).run_id
    store = DuckDBStore(store_path)
    try:
        started = time.perf_counter()
        from_checkpoint, _ = load_state(store, run_id)
        checkpoint_s = time.perf_counter() - started
        started = time.perf_counter()
        records = store.read(run_id)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        folded = project(event for _, event in records)
        fold_s = time.perf_counter() - started
        assert folded == from_checkpoint
        checkpoint = store.load_checkpoint(run_id)
        assert checkpoint is not None
        started = time.perf_counter()
        encoded = encode_checkpoint(checkpoint)
        parts = list(encoded.parts)
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        decoded = decode_checkpoint(
            checkpoint.seq, encoded.summary, encoded.state, encoded.report, parts
        )
        decode_s = time.perf_counter() - started
        assert decoded == checkpoint
    finally:
        store.close()
    return {
        "events": len(records),
        "from_checkpoint_s": checkpoint_s,
        "read_events_s": read_s,
        "fold_s": fold_s,
        "encode_s": encode_s,
        "decode_s": decode_s,
        "state_mib": (len(encoded.state) + sum(map(len, parts))) / 2**20,
        "summary_bytes": len(encoded.summary),
        "report_bytes": len(encoded.report or ""),
    }


def child(argv: list[str]) -> dict[str, Any]:
    mode, n, store = argv[0], int(argv[1]), Path(argv[2])
    if mode == "build":
        return build(n, store, int(argv[3]))
    if mode == "reuse":
        return reuse(n, store)
    return load(n, store)


def run_child(*args: object) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def whole_process(n: int, rounds: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cli_process import Repeated, completed_run, load_average, median_of

    with tempfile.TemporaryDirectory() as folder:
        done = completed_run(Path(folder), n)
        store = ("--store", done.store, "--quiet")
        again = median_of(rounds, "run", done.config, *store)
        resumed = median_of(rounds, "resume", done.run_id[:12], *store)
    print(f"N = {n:,} trials, whole processes, load average {load_average()}")
    print(f"{'command':<36} {'median s':>9} {'CPU s':>6} {'peak RSS MiB':>13}  every s")
    first = Repeated(done.run.wall_s, done.run.peak_rss_mib, [done.run.wall_s], done.run.cpu_s)
    rows = [
        ("themis run CONFIG (new store)", first),
        ("themis run CONFIG (completed run)", again),
        ("themis resume RUN (completed run)", resumed),
    ]
    for label, row in rows:
        every = " ".join(f"{wall:.2f}" for wall in row.walls)
        print(
            f"{label:<36} {row.wall_s:>9.2f} {row.cpu_s:>6.2f} {row.peak_rss_mib:>13.0f}  {every}"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2:])))
        return
    from themis.core.runtime import RuntimeConfig

    numbers = [int(arg) for arg in sys.argv[1:] if arg != "--in-process"]
    n = numbers[0] if numbers else N
    if "--in-process" not in sys.argv:
        whole_process(n, numbers[1] if len(numbers) > 1 else ROUNDS)
        return
    default_interval = RuntimeConfig().checkpoint_interval
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "bench.duckdb"
        built = run_child("build", n, store, default_interval)
        reused = run_child("reuse", n, store)
        loaded = run_child("load", n, store)
        only_final = run_child("build", n, Path(folder) / "final-only.duckdb", 0)
    events = loaded["events"]
    rows = [
        (f"run, checkpoint_interval = {default_interval:,}", built["run_s"]),
        ("run, checkpoint_interval = 0 (final checkpoint only)", only_final["run_s"]),
        ("fresh process: build and compile the experiment", reused["compile_s"]),
        ("fresh process: Experiment.run decides nothing to do", reused["reuse_s"]),
        ("full state from the checkpoint (load_state)", loaded["from_checkpoint_s"]),
        (f"full state by folding the log: read {events:,} events", loaded["read_events_s"]),
        ("  ... and fold them", loaded["fold_s"]),
        (f"checkpoint codec: encode the state ({events:,} events)", loaded["encode_s"]),
        ("checkpoint codec: decode it", loaded["decode_s"]),
    ]
    print(f"N = {n:,} trials, {events:,} events")
    for label, seconds in rows:
        print(f"{label:<58} {seconds:>8.3f} s")
    print(
        f"checkpoint size: state {loaded['state_mib']:.1f} MiB, summary "
        f"{loaded['summary_bytes']} B, report {loaded['report_bytes']} B"
    )


if __name__ == "__main__":
    main()

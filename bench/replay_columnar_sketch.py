"""ADR 0115's columnar trials' phase sketched in the real process, and the whole replay timed.

Not the implementation: a measurement of what the planned path gives a whole
`themis replay RUN --stage score --config CHANGED` before it is built. With `columnar`, the
batch execution's `_dispatch_batch` and the writer's `_fill`, `_flush` and `_append` are
replaced (monkeypatched) for this process: each `READ_TRIALS` trials' generations are read as
columns (`duckdb_generations.generation_columns`, the plans' keys given; the last read's let
go of first), each 1,000-trial chunk is parsed and scored
in one loop (`themis.core.answered`), its payloads written from the columns
(`derived_payloads`: the copies spliced from the source's texts), and sent to the writer as one
item (`Chunk`: the texts and the three maps' columns), which the writer appends as rows cut by
`duckdb_log._rows` and folds by `EventColumns.put_new_columns`, a chunk ending a batch wherever
it comes (ADR 0116). It assumes what the plan's
conditions check (every generation located in one source and plain, compare-only metrics, no
reducer, no judges, no twin, the DuckDB store) and checks none of them. With `today`, nothing
is replaced. Either way the replay runs through the CLI's console entry on a copy of the
stored run.

Prints the wall and CPU from the process's start, the peak RSS, RSS and Python's allocated
blocks by half second (a sampling thread), the chunks alive at most, and a digest of the JSON
report without its `elapsed_s` (equal in both modes). Leaves the copy at
`/tmp/<user>-sketch-MODE.duckdb` for a comparison of the logs.

Usage: `python bench/replay_columnar_sketch.py today|columnar [--run-dir DIR] [--source RUN]
[--config NAME]` (`SKETCH_READ_TRIALS=N`: another read size). Without `--run-dir`, the stored
100k run of `cli_process.stored_replay_source` (made on first use).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import io
import json
import os
import resource
import shutil
import sys
import threading
import time
from itertools import islice
from pathlib import Path
from typing import Any

T0, C0 = time.perf_counter(), time.process_time()
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import REPLAY_SOURCE, REPLAY_SOURCE_ID, stored_replay_source  # noqa: E402

SAMPLES: list[tuple[float, float, int]] = []


def sample() -> None:
    """RSS (MiB) and Python's allocated blocks every 50 ms, from the process's start."""
    page = os.sysconf("SC_PAGE_SIZE")
    while True:
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * page / 2**20
        SAMPLES.append((time.perf_counter() - T0, rss, sys.getallocatedblocks()))
        time.sleep(0.05)


# Trials whose generations are read at once: half `LOOKUP_TRIALS`, the read's columns (~5.5
# MiB at 10,000: the payloads kept for the copies' splice) held half as long (ADR 0116).
READ_TRIALS = int(os.environ.get("SKETCH_READ_TRIALS", "5000"))


class Chunk:
    """One chunk's trials as the writer gets them: the rows' texts and the maps' columns."""

    alive = most = 0  # chunks alive now, and at most (ADR 0116: 12-18 before the writer's fix)

    def __init__(self, count: int, texts: Any, columns: tuple[Any, Any, Any]) -> None:
        self.count, self.texts, self.columns = count, texts, columns
        Chunk.alive += 1
        Chunk.most = max(Chunk.most, Chunk.alive)

    def __del__(self) -> None:
        Chunk.alive -= 1


def columnar() -> None:  # noqa: PLR0915
    """The interpreter's batch dispatch and the writer patched for this process."""
    import trio

    from themis.adapters.derived_payloads import copy_payloads, parse_payloads, score_payloads
    from themis.adapters.stores.duckdb_generations import generation_columns
    from themis.adapters.stores.duckdb_log import INSERT_BATCHES, _rows, _Texts
    from themis.app.execution import interpreter
    from themis.app.execution.limiters import deliver
    from themis.app.execution.writer import EventWriter
    from themis.core.answered import answered_columns
    from themis.core.generation import is_truncated

    kinds = ("generation_completed", "parse_completed", "score_completed")
    stages = ("generate", "parse", "score")

    async def dispatch(run: Any, work: Any, size: int) -> bool:
        items, store, found = iter(work), run.store, None
        names = [name for name, _ in run.scorer._scorers]
        scorers = [scored for _, scored in run.scorer._scorers]
        parser, plugins, epoch = run.parser, run.compiled.plugins, run.epoch
        while ahead := list(islice(items, READ_TRIALS)):
            places = [run.located.pop(item.plan.trial_key) for item in ahead]
            source, seqs = places[0].run_id, [place.seq for place in places]
            asked = [item.plan.trial_key for item in ahead]

            def read(source: str = source, seqs: list[int] = seqs, keys: Any = asked) -> Any:
                with store._connection() as con:
                    return generation_columns(con, source, seqs, keys)

            found = None  # the last read's columns let go of before the next (ADR 0116)
            found = await trio.to_thread.run_sync(read)
            for first in range(0, len(ahead), size):
                plans = [item.plan for item in ahead[first : first + size]]
                n = len(plans)
                fields = [column[first : first + n] for column in found.fields]
                ids, keys = [plan.trial_id for plan in plans], [plan.trial_key for plan in plans]
                at = run.clock.now()
                answers, errors, scored = answered_columns(
                    parser,
                    fields[2],
                    [plan.choices for plan in plans],
                    [plan.expected for plan in plans],
                    scorers,
                    plugins,
                )
                copies = copy_payloads(at, found.payloads[first : first + n], source)
                parses = parse_payloads(at, ids, keys, answers, errors, epoch)
                scores = score_payloads(at, ids, keys, names, scored, epoch)
                payloads = [
                    text for three in zip(copies, parses, scores, strict=True) for text in three
                ]
                tripled = [key for key in keys for _ in range(3)]
                texts = _Texts(kinds * n, stages * n, [repr(at)] * (3 * n), tripled, payloads)
                generations = [[at] * n, keys, *fields[2:9], [True] * n, [source] * n]
                generations += [*fields[11:], [()] * n, [None] * n]
                maps = (
                    generations,
                    [[at] * n, ids, keys, answers, errors, [epoch] * n],
                    [
                        [at] * n,
                        ids,
                        keys,
                        [dict(zip(names, v, strict=True)) for v in scored],
                        [epoch] * n,
                    ],
                )
                counts = run.counts
                counts.generated += n
                counts.truncated += sum(map(is_truncated, fields[3]))
                unparsed = answers.count(None)
                counts.parsed += n - unparsed
                counts.unparsed += unparsed
                counts.scored += n
                counts.done += n
                await deliver(run.send, [Chunk(n, texts, maps)])
                while run.send.statistics().current_buffer_used > interpreter.CHUNKS_AHEAD:
                    await trio.sleep(interpreter.WRITER_POLL_S)
                await trio.lowlevel.checkpoint()
        return False

    def append(self: Any, batch: Any) -> None:
        if self.before_first is not None:
            self.before_first()
            self.before_first = None
        seq, events = self._next_seq, []
        for item in batch:
            if not isinstance(item, Chunk):
                events.append(item)
                continue
            if events:
                self._store.append(self._run_id, seq, events)
                seq, events = seq + len(events), []
            rows = _rows(self._run_id, seq, item.texts)
            with self._store._transaction() as con:
                con.execute(INSERT_BATCHES, rows)
            seq += 3 * item.count
        if events:
            self._store.append(self._run_id, seq, events)

    flush = EventWriter._flush

    async def flushed(self: Any, batch: Any) -> None:
        if not any(isinstance(item, Chunk) for item in batch):
            await flush(self, batch)
            return
        await trio.to_thread.run_sync(self._append, batch)
        with self._folding:
            total, events, fold = 0, [], self._projection
            for item in batch:
                if not isinstance(item, Chunk):
                    events.append(item)
                    total += 1
                    continue
                if events:
                    fold.apply(events)
                    events = []
                held = (fold._generations, fold._parses, fold._scores)
                for columns, map_ in zip(item.columns, held, strict=True):
                    if not map_.put_new_columns(columns):
                        raise RuntimeError("a chunk the sketch cannot fold as columns")
                total += 3 * item.count
            if events:
                fold.apply(events)
                self._last = events[-1]
            self._next_seq += total
            self.written += total

    async def filled(self: Any, receive: Any, batch: Any) -> bool:
        # `_fill`'s batch (its size or its interval), but ended at a chunk wherever it comes (a
        # chunk is a whole batch of events), not only when it comes first: a batch begun by an
        # event (the execution's first) gathered chunks for an interval, 12-18 alive (ADR 0116).
        with trio.move_on_after(self._interval):
            while not isinstance(batch[-1], Chunk) and len(batch) < self._batch_size:
                try:
                    batch.extend(await receive.receive())
                except trio.EndOfChannel:
                    return False
        return True

    interpreter._dispatch_batch = dispatch  # type: ignore[assignment]
    EventWriter._append = append  # type: ignore[method-assign]
    EventWriter._flush = flushed  # type: ignore[method-assign]
    EventWriter._fill = filled  # type: ignore[method-assign]


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arguments.add_argument("mode", choices=["today", "columnar"])
    arguments.add_argument("--run-dir", type=Path, default=None)
    arguments.add_argument("--source", default=REPLAY_SOURCE_ID)
    arguments.add_argument("--config", default="changed.toml")
    given = arguments.parse_args()
    if given.run_dir is None:
        fresh = not (REPLAY_SOURCE / "changed.toml").exists()
        given.run_dir = stored_replay_source()
        if fresh:  # making the stored run is not the replay's: the clocks start again
            global T0, C0
            T0, C0 = time.perf_counter(), time.process_time()
    store = Path(f"/tmp/{getpass.getuser()}-sketch-{given.mode}.duckdb")
    shutil.copy(given.run_dir / "bench.duckdb", store)
    os.chdir(given.run_dir)
    threading.Thread(target=sample, daemon=True).start()
    from themis.app.cli.console import main as console_main

    if given.mode == "columnar":
        columnar()
    sys.argv = ["themis", "replay", given.source, "--stage", "score", "--config", given.config]
    sys.argv += ["--store", str(store), "--json", "--quiet"]
    out = io.StringIO()
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(out):
        console_main()
    wall, cpu = time.perf_counter() - T0, time.process_time() - C0
    report = json.loads(out.getvalue())
    report.pop("elapsed_s", None)
    digest = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16]
    halves = range(int(wall * 2) + 1)
    rss = [max([m for t, m, _ in SAMPLES if int(t * 2) == k] or [0]) for k in halves]
    blocks = [max([b for t, _, b in SAMPLES if int(t * 2) == k] or [0]) for k in halves]
    print("RSS MiB by 0.5 s:", " ".join(f"{value:.0f}" for value in rss))
    print("Python's blocks (thousands) by 0.5 s:", " ".join(f"{b // 1000}" for b in blocks))
    if given.mode == "columnar":
        print(f"chunks alive at most: {Chunk.most}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{given.mode}: wall {wall:.2f} s, CPU {cpu:.2f} s, peak {peak:.0f} MiB, "
        f"{report['trials']['scored'] / wall:,.0f} trials/s, report {digest}"
    )


if __name__ == "__main__":
    main()

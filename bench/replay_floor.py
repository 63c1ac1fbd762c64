"""The floors of a derived replay's trials' phase: what its 100k trials must cost at the least,
design by design (ADR 0115).

On a copy of a stored run (default: a 100k run of `bench/cli_process.py`'s config, source
`bbb27ef33c16`, made on first use by `cli_process.stored_replay_source`, and its
`changed.toml` scoring `numeric_match` and `contains`),
the replay is prepared as `themis replay RUN --stage score --config CHANGED` prepares it
(`prepare_replay_with_config`: the derived run's trials and where each generation is), then
each design's trials' phase is run alone, its parts one after the other on one thread (no
overlap, no trio, no writer thread): process CPU and wall of each part. Printed per design;
the fixed parts (imports in a fresh process, the preparation) are printed first.

- **today** (reference, from its parts): the lookups (`generations_at`, 10,000 trials a query,
  events built), the trials (`GenerationCompleted.reused`, `parse_answer`, `ParseCompleted`,
  `score_answered`, as `trial_now` does), the encoding (`batch_rows`), the insert (one
  transaction of `INSERT_BATCHES` a 1,000-trial chunk) and the fold (`Projection.apply` of each
  chunk's events). Leaves out trio, the writer's thread and its waits, the progress counts.
- **columnar**: the located generations' payloads and fields read as columns
  (`duckdb_generations.generation_columns`: the same plain check as `generations_at`, rows in
  plan order, no event built); parse and score in one loop (the same `parse_answer` and
  `metric_scorer`s); the payloads written from the columns (`themis.adapters.derived_payloads`:
  the copies spliced from the source's texts, the parses and scores formatted; checked against
  the codec for every trial); the rows cut by
  `duckdb_log.text_rows` and inserted by `INSERT_BATCHES`, one transaction a 1,000-trial chunk; the
  fold's maps put a chunk's columns at a time (`EventColumns.put_new_columns`). One `at` a
  chunk. The derived log is checked against today's (every payload, `at` aside). Leaves out
  the fallback to today's path for a trial that is not plain, the progress counts and the
  run's own events.
- **columnar, copies made by DuckDB**: the same, but one `INSERT ... SELECT` a chunk in which
  DuckDB makes the copies' payloads from the source's stored text (`'{"at":' || time || the
  source's payload from `,"trial_key":` on, its cache_hit/source_run pair replaced`: ADR 0105)
  and cuts the rows (4 trials a row).
- **two processes**: the columnar design with its pure part (parse, score, the two payload
  texts) in a child process fed each chunk's texts, ids, keys and expected answers through a
  pipe (pickled), one chunk ahead, the parent reading DuckDB, inserting and folding. Prints
  the parent's CPU, the child's, and the wall of the pipelined phase.

Usage: `python bench/replay_floor.py [--run-dir DIR] [--source RUN] [--config NAME]`.
"""

from __future__ import annotations

import argparse
import gc
import math
import pickle
import queue
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import REPLAY_SOURCE_ID, load_average, stored_replay_source

CHUNK = 1_000  # trials a chunk (the writer's append)
LOOKUP = 10_000  # trials a lookup
TIMES: dict[str, list[tuple[str, float, float]]] = {}


def clocks() -> tuple[float, float]:
    """The process's CPU and the wall clock, now."""
    return time.process_time(), time.perf_counter()


def since(total: tuple[float, float], start: tuple[float, float]) -> tuple[float, float]:
    """`total` (CPU, wall) with the time since `start` added."""
    now = clocks()
    return total[0] + now[0] - start[0], total[1] + now[1] - start[1]


def committed(con: Any, statement: str, parameters: object) -> None:
    """`statement` in a transaction of its own, as the writer's append runs its insert."""
    con.execute("BEGIN")
    con.execute(statement, parameters)
    con.execute("COMMIT")


@contextmanager
def timed(design: str, part: str) -> Iterator[None]:
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    TIMES.setdefault(design, []).append(
        (part, time.process_time() - cpu, time.perf_counter() - wall)
    )


def add(design: str, part: str, cpu: float, wall: float) -> None:
    TIMES.setdefault(design, []).append((part, cpu, wall))


# -- the pure part: parse, score and the two payloads, from columns ---------------------------


def pure_part(  # noqa: PLR0913
    parser: Any,
    specs: Sequence[Any],
    metrics: Sequence[str],
    at: float,
    ids: Sequence[str],
    keys: Sequence[str],
    texts: Sequence[str],
    expected: Sequence[str | None],
) -> tuple[list[Any], list[Any], list[str], list[str], list[tuple[float, ...]]]:
    """Each trial's answer, error, parse payload, score payload and scores: parsed and scored
    in one loop (`themis.core.answered`), the payloads written from the columns
    (`derived_payloads`). No choices, no plugins: the bench's config has none."""
    from themis.adapters.derived_payloads import parse_payloads, score_payloads
    from themis.core.answered import answered_columns

    choices = [None] * len(texts)
    answers, errors, scored = answered_columns(parser, texts, choices, expected, specs)
    parses = parse_payloads(at, ids, keys, answers, errors, 0)
    scores = score_payloads(at, ids, keys, metrics, scored, 0)
    return answers, errors, parses, scores, scored


# -- the setup --------------------------------------------------------------------------------


class Replay:
    """The prepared derived replay: its trials, the places of their generations, its parts."""

    def __init__(self, store_path: Path, run_dir: Path, source: str, config: str) -> None:
        import os

        from themis.app.api.stored_runs import load_config, opened_store
        from themis.app.usecases.resume import prepare_replay_with_config
        from themis.collector import collector_settled
        from themis.core.stages import Stage

        os.chdir(run_dir)
        with (
            timed("fixed", "preparation (load_config + prepare_replay_with_config)"),
            collector_settled(),
        ):
            loaded = load_config(run_dir / config, ())
            with opened_store(str(store_path)) as store:
                prepared = prepare_replay_with_config(store, source, Stage.SCORE, loaded)
        request = prepared.request
        self.compiled = request.compiled
        self.plans = request.plans
        self.located = dict(request.located)
        self.source = next(iter(self.located.values())).run_id
        spec = self.compiled.spec
        self.metrics = [metric.name for metric in spec.metrics]
        self.plugins = self.compiled.plugins


def scorers_of(replay: Replay) -> list[Callable[[Any, Any], float]]:
    from themis.core.scoring import metric_scorer

    return [metric_scorer(metric, replay.plugins) for metric in replay.compiled.spec.metrics]


def parser_of(replay: Replay) -> Callable[[str], Any]:
    from themis.core.scoring import parse_answer

    spec, plugins = replay.compiled.spec.parser, replay.plugins
    return lambda text: parse_answer(spec, text, None, plugins)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- today's per-event path, from its parts ---------------------------------------------------


def today(con: Any, replay: Replay, run_id: str) -> None:
    from themis.adapters.stores.duckdb_generations import generations_at
    from themis.adapters.stores.duckdb_log import INSERT_BATCHES, batch_rows
    from themis.app.execution.candidate_scoring import CandidateScorer
    from themis.core.events import Event, ParseCompleted
    from themis.core.state import Projection

    class Clock:
        now = staticmethod(time.time)

    scorer = CandidateScorer(replay.compiled.spec, Clock(), None, None, replay.plugins)
    parse = parser_of(replay)
    projection = Projection()
    seq = 1
    lookups = trials = encoding = insert = fold = (0.0, 0.0)

    from returns.result import Success

    for ahead in chunks(replay.plans, LOOKUP):
        start = clocks()
        places = {plan.trial_key: replay.located[plan.trial_key] for plan in ahead}
        keys = {place.seq: key for key, place in places.items()}
        found = {
            event.trial_key: event
            for _, event in generations_at(con, replay.source, list(keys), keys)
        }
        lookups = since(lookups, start)
        for chunk in chunks(ahead, CHUNK):
            start = clocks()
            events: list[Event] = []
            for plan in chunk:
                generation = found[plan.trial_key].reused(time.time(), replay.source)
                parsed = parse(generation.text)
                answer = error = None
                if isinstance(parsed, Success):
                    answer = parsed.unwrap()
                else:
                    error = parsed.failure()
                events.append(generation)
                events.append(
                    ParseCompleted(time.time(), plan.trial_id, plan.trial_key, answer, error, 0)
                )
                events.append(
                    scorer.score_answered(plan.trial_id, plan.trial_key, answer, plan.expected, 0)
                )
            trials = since(trials, start)
            start = clocks()
            rows = batch_rows(run_id, seq, events)
            encoding = since(encoding, start)
            start = clocks()
            committed(con, INSERT_BATCHES, rows)
            insert = since(insert, start)
            start = clocks()
            projection.apply(events)
            fold = since(fold, start)
            seq += len(events)
    add("today", "lookups (generations_at: query + events)", *lookups)
    add("today", "trials (reused, parse, score events)", *trials)
    add("today", "encoding (batch_rows)", *encoding)
    add("today", "insert (INSERT_BATCHES + COMMIT)", *insert)
    add("today", "fold (Projection.apply)", *fold)


# -- the columnar path ------------------------------------------------------------------------

# One chunk's rows made by DuckDB: the copies from the source's payloads, then each trial's
# parse and score payloads given, 4 trials a row.
_INSERT_DERIVED = """
INSERT INTO event_batches
WITH t AS (SELECT unnest($src::BIGINT[]) AS src, unnest($keys::VARCHAR[]) AS key,
  unnest($parses::VARCHAR[]) AS parse, unnest($scores::VARCHAR[]) AS score,
  generate_subscripts($keys::VARCHAR[], 1) - 1 AS i),
 rows AS (SELECT seq, kinds, payloads FROM event_batches WHERE run_id = $source
  AND seq > $low - 1024 AND seq <= $high AND seq + n > $low),
 events AS (SELECT seq + generate_subscripts(string_split(kinds, ' '), 1) - 1 AS seq,
  unnest(string_split(payloads, chr(10))) AS payload FROM rows),
 g AS (SELECT t.*, '{"at":' || $at || regexp_replace(
   substr(events.payload, strpos(events.payload, ',"trial_key":')),
   ',"cache_hit":(true|false),"source_run":(null|"[0-9a-f]*"),',
   ',"cache_hit":true,"source_run":"' || $source || '",') AS generation
  FROM t JOIN events ON events.seq = t.src)
SELECT $run, $base + 3 * min(i), 3 * count(*),
  string_agg('generation_completed parse_completed score_completed', ' ' ORDER BY i),
  string_agg('generate parse score', ' ' ORDER BY i),
  string_agg($at || ' ' || $at || ' ' || $at, ' ' ORDER BY i),
  '[' || string_agg('"' || key || '","' || key || '","' || key || '"', ',' ORDER BY i) || ']',
  string_agg(generation || chr(10) || parse || chr(10) || score, chr(10) ORDER BY i)
FROM g GROUP BY i // 4
"""


def read_columns(con: Any, source: str, seqs: list[int]) -> tuple[list[str], list[list[Any]]]:
    """The generations' payloads and fields at `seqs` (one list per field of `COLUMNS`), in
    `seqs`' order (`duckdb_generations.generation_columns`)."""
    from themis.adapters.stores.duckdb_generations import generation_columns

    found = generation_columns(con, source, seqs)
    if found is None:
        raise SystemExit("a payload that is not plain: this bench measures plain ones only")
    return found.payloads, found.fields


_KINDS = ("generation_completed", "parse_completed", "score_completed")
_STAGES = ("generate", "parse", "score")


def python_rows(  # noqa: PLR0913
    run_id: str,
    base: int,
    at: str,
    keys: Sequence[str],
    copies: Sequence[str],
    parses: Sequence[str],
    scores: Sequence[str],
) -> list[Any]:
    """`INSERT_BATCHES`' parameters of a chunk's events, cut as the writer cuts them
    (`duckdb_log.text_rows`), from the texts alone."""
    from themis.adapters.stores.duckdb_log import text_rows
    from themis.core.trial_columns import EventTexts

    n = len(keys)
    payloads = [text for trio in zip(copies, parses, scores, strict=True) for text in trio]
    tripled = [key for key in keys for _ in range(3)]
    return text_rows(
        run_id, base, EventTexts(_KINDS * n, _STAGES * n, [at] * (3 * n), tripled, payloads)
    )


class Columns:
    """The derived run's fold, its maps put a chunk's columns at a time (`put_new_columns`)."""

    def __init__(self) -> None:
        from themis.core.event_columns import EventColumns
        from themis.core.events import GenerationCompleted, ParseCompleted, ScoreCompleted

        self.generations = EventColumns(GenerationCompleted, "trial_key")
        self.parses = EventColumns(ParseCompleted, "trial_id")
        self.scores = EventColumns(ScoreCompleted, "trial_id")
        self.scores.index_with(self.parses)  # as `Projection` holds them

    def put(  # noqa: PLR0913
        self,
        at: float,
        chunk: Sequence[Any],
        fields: list[list[Any]],
        source: str,
        answers: list[Any],
        errors: list[Any],
        scores: list[dict[str, float]],
    ) -> None:
        n = len(chunk)
        ids = [plan.trial_id for plan in chunk]
        keys = [plan.trial_key for plan in chunk]
        copies = [[at] * n, *fields[1:9], [True] * n, [source] * n, *fields[11:], [()] * n]
        assert self.generations.put_new_columns([*copies, [None] * n])
        assert self.parses.put_new_columns([[at] * n, ids, keys, answers, errors, [0] * n])
        assert self.scores.put_new_columns([[at] * n, ids, keys, scores, [0] * n])


def columnar(  # noqa: PLR0915
    con: Any, replay: Replay, run_id: str, child: Child | None = None, *, by_duckdb: bool = False
) -> Columns:
    """The columnar trials' phase; the pure part in `child` when given (pipelined); the copies
    and the rows made by DuckDB (`_INSERT_DERIVED`) when `by_duckdb`, else in Python."""
    design = "columnar" if child is None else "two processes"
    design += ", copies made by DuckDB" if by_duckdb else ""
    from themis.adapters.derived_payloads import copy_payloads
    from themis.adapters.stores.duckdb_log import INSERT_BATCHES

    columns = Columns()
    read = pure = encoding = insert = fold = (0.0, 0.0)

    base = 1
    whole = clocks()
    pending: list[tuple[Any, ...]] = []  # chunks sent to the child, not yet received

    def finish(  # noqa: PLR0913
        at: float,
        chunk: Sequence[Any],
        texts: list[str],
        fields: list[list[Any]],
        src: list[int],
        answers: list[Any],
        errors: list[Any],
        parses: list[str],
        scores: list[str],
        values: list[tuple[float, ...]],
    ) -> None:
        nonlocal base, encoding, insert, fold
        keys = [plan.trial_key for plan in chunk]
        start = clocks()
        if by_duckdb:
            statement, parameters = (
                _INSERT_DERIVED,
                {
                    "src": src,
                    "keys": keys,
                    "parses": parses,
                    "scores": scores,
                    "source": replay.source,
                    "low": min(src),
                    "high": max(src),
                    "at": repr(at),
                    "run": run_id,
                    "base": base,
                },
            )
        else:
            copies = copy_payloads(at, texts, replay.source)
            statement = INSERT_BATCHES
            parameters = python_rows(run_id, base, repr(at), keys, copies, parses, scores)
            encoding = since(encoding, start)
            start = clocks()
        committed(con, statement, parameters)
        insert = since(insert, start)
        base += 3 * len(chunk)
        start = clocks()
        names = replay.metrics
        scored = [dict(zip(names, given, strict=True)) for given in values]
        columns.put(at, chunk, fields, replay.source, answers, errors, scored)
        fold = since(fold, start)

    for ahead in chunks(replay.plans, LOOKUP):
        start = clocks()
        seqs = [replay.located[plan.trial_key].seq for plan in ahead]
        texts, fields = read_columns(con, replay.source, seqs)
        read = since(read, start)
        for first in range(0, len(ahead), CHUNK):
            chunk = ahead[first : first + CHUNK]
            part = [column[first : first + CHUNK] for column in fields]
            given = (texts[first : first + CHUNK], part, seqs[first : first + CHUNK])
            at = time.time()
            ids = [plan.trial_id for plan in chunk]
            keys = [plan.trial_key for plan in chunk]
            expected = [plan.expected for plan in chunk]
            if child is None:
                start = clocks()
                result = pure_part(
                    replay.compiled.spec.parser,
                    replay.compiled.spec.metrics,
                    replay.metrics,
                    at,
                    ids,
                    keys,
                    part[2],
                    expected,
                )
                pure = since(pure, start)
                finish(at, chunk, *given, *result)
                continue
            start = clocks()
            child.send((at, ids, keys, part[2], expected))
            pure = since(pure, start)
            pending.append((at, chunk, *given))
            if len(pending) > 1:
                start = clocks()
                result = child.receive()
                pure = since(pure, start)
                finish(*pending.pop(0), *result)
    while pending:
        start = clocks()
        result = child.receive()  # type: ignore[union-attr]
        pure = since(pure, start)
        finish(*pending.pop(0), *result)
    phase = since((0.0, 0.0), whole)
    add(design, "read the generations as columns (SQL, plain check, fetch)", *read)
    label = "parse, score, payload texts" if child is None else "pipe: send + wait for the child"
    add(design, label, *pure)
    if not by_duckdb:
        add(design, "the copies spliced, the rows cut (duckdb_log.text_rows)", *encoding)
    label = "INSERT ... SELECT (copies, rows by DuckDB)" if by_duckdb else "INSERT_BATCHES"
    add(design, label + " + COMMIT", *insert)
    add(design, "fold: EventColumns.put_new_columns a chunk", *fold)
    add(design, "whole phase (wall: pipelined)", *phase)
    return columns


class Child:
    """The pure part in a child process, fed through a pipe."""

    def __init__(self, replay: Replay) -> None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.before = usage.ru_utime + usage.ru_stime  # earlier children's (the imports')
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                pickle.dumps(
                    (replay.compiled.spec.parser, list(replay.compiled.spec.metrics))
                ).hex(),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.to, self.back = self.process.stdin, self.process.stdout
        if self.back.read(1) != b"R":  # ready: imports done
            raise SystemExit("the child did not start")
        # The results read by a thread: the child's writes never wait for the parent's sends.
        self.results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.reader = threading.Thread(target=self._read_all, daemon=True)
        self.reader.start()

    def _read_all(self) -> None:
        while (message := read(self.back)) is not None:
            self.results.put(message)

    def send(self, message: Any) -> None:
        write(self.to, message)

    def receive(self) -> Any:
        return self.results.get()

    def close(self) -> float:
        """The child's CPU seconds."""
        self.to.close()
        self.process.wait()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime - self.before


def write(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<I", len(data)) + data)
    stream.flush()


def read(stream: BinaryIO) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack("<I", head)
    return pickle.loads(stream.read(size))


def child_main(setup: str) -> None:
    parser, metrics = pickle.loads(bytes.fromhex(setup))
    names = [metric.name for metric in metrics]
    out, into = sys.stdout.buffer, sys.stdin.buffer
    out.write(b"R")
    out.flush()
    while (message := read(into)) is not None:
        at, ids, keys, texts, expected = message
        write(
            out,
            pure_part(
                parser,
                metrics,
                names,
                at,
                ids,
                keys,
                texts,
                expected,
            ),
        )


# -- the checks -------------------------------------------------------------------------------


def check_payloads(replay: Replay) -> int:
    """Every trial's parse and score payload formatted from columns equals the codec's."""
    from returns.result import Success

    from themis.adapters.codec import encode_event
    from themis.core.events import ParseCompleted, ScoreCompleted

    parse, scorers = parser_of(replay), scorers_of(replay)
    at = time.time()

    checked = 0
    for chunk in chunks(replay.plans, LOOKUP):
        texts = [
            f"The answer is {index % 37}." if index % 5 else "none" for index in range(len(chunk))
        ]
        ids = [plan.trial_id for plan in chunk]
        keys = [plan.trial_key for plan in chunk]
        expected = [plan.expected for plan in chunk]
        spec = replay.compiled.spec
        made = pure_part(spec.parser, spec.metrics, replay.metrics, at, ids, keys, texts, expected)
        answers, errors, parses, scores, _ = made
        for index, plan in enumerate(chunk):
            parsed = parse(texts[index])
            answer = parsed.unwrap() if isinstance(parsed, Success) else None
            event = ParseCompleted(
                at, plan.trial_id, plan.trial_key, answers[index], errors[index], 0
            )
            assert answer == answers[index]
            assert encode_event(event) == parses[index], (encode_event(event), parses[index])
            score = ScoreCompleted(
                at,
                plan.trial_id,
                plan.trial_key,
                {
                    name: scorer(answer, plan.expected)
                    for name, scorer in zip(replay.metrics, scorers, strict=True)
                },
                0,
            )
            assert encode_event(score) == scores[index], (encode_event(score), scores[index])
            checked += 1
    return checked


def check_logs(con: Any, ours: str, todays: str) -> tuple[int, int]:
    """Events of run `ours` whose payload (`at` aside), kind and key equal run `todays`'s at the
    same seq, and how many `todays` holds."""
    from themis.adapters.stores.duckdb_log import EVENTS_VIEW

    con.execute(EVENTS_VIEW)
    same = con.execute(
        "SELECT count(*) FROM (SELECT * FROM events WHERE run_id = $1) a"
        " JOIN (SELECT * FROM events WHERE run_id = $2) b USING (seq)"
        " WHERE a.kind = b.kind AND a.trial_key = b.trial_key"
        " AND a.stage IS NOT DISTINCT FROM b.stage"
        " AND substr(a.payload, strpos(a.payload, ','))"
        " = substr(b.payload, strpos(b.payload, ','))",
        [ours, todays],
    ).fetchone()[0]
    total = con.execute("SELECT sum(n) FROM event_batches WHERE run_id = $1", [todays]).fetchone()[
        0
    ]
    return same, total


def imports_s() -> float:
    """Wall seconds of a fresh process importing what a derived replay runs (the CLI's
    console, the API's stored runs, the use case, the interpreter, DuckDB's store): the
    lead's timeline counts ~0.34 s from the process's start, the interpreter's own included."""
    code = (
        "import time; t = time.perf_counter(); import themis.app.cli.console;"
        " import themis.app.api.stored_runs, themis.app.usecases.resume;"
        " import themis.app.execution.interpreter, themis.adapters.stores.duckdb;"
        " print(time.perf_counter() - t)"
    )
    best = min(
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    )
    return best


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child_main(sys.argv[2])
        return
    arguments = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    arguments.add_argument("--run-dir", type=Path, default=None)
    arguments.add_argument("--source", default=REPLAY_SOURCE_ID)
    arguments.add_argument("--config", default="changed.toml")
    given = arguments.parse_args()
    given.run_dir = given.run_dir or stored_replay_source()
    print(f"load average before: {load_average()}")
    add("fixed", "imports (a fresh process, least of 3)", float("nan"), imports_s())
    import duckdb

    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        store = Path(folder) / "floor.duckdb"
        shutil.copy(given.run_dir / "bench.duckdb", store)
        replay = Replay(store, given.run_dir.resolve(), given.source, given.config)
        gc.collect()
        gc.freeze()  # as the execution's settled collector does
        n = len(replay.plans)
        print(
            f"{n:,} trials; payloads formatted from columns == the codec's: "
            f"{check_payloads(replay):,}"
        )
        con = duckdb.connect(str(store))
        today(con, replay, "floor-today")
        columnar(con, replay, "floor-columnar")
        columnar(con, replay, "floor-columnar-sql", by_duckdb=True)
        child = Child(replay)
        columnar(con, replay, "floor-twoproc", child)
        child_cpu = child.close()
        add("two processes", "the child's CPU (its wall: the phase's)", child_cpu, float("nan"))
        for ours in ("floor-columnar", "floor-columnar-sql", "floor-twoproc"):
            same, total = check_logs(con, ours, "floor-today")
            print(f"{ours}: {same:,} of {total:,} events equal today's (payload `at` aside)")
        con.close()
    for design, parts in TIMES.items():
        print(f"\n{design}:")
        cpu_sum = wall_sum = 0.0
        for part, cpu, wall in parts:
            print(f"  {part:60s} CPU {cpu:6.2f} s  wall {wall:6.2f} s")
            if not part.startswith("whole") and not part.startswith("the child"):
                cpu_sum += 0.0 if math.isnan(cpu) else cpu
                wall_sum += 0.0 if math.isnan(wall) else wall
        if design != "fixed":
            print(f"  {'sum of the parts':60s} CPU {cpu_sum:6.2f} s  wall {wall_sum:6.2f} s")
    print(
        f"\nload average after: {load_average()}; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()

"""How many times a `themis run` looks a trial's keys up in the fold, by caller, and what a
lookup of each kind costs.

`themis run` of `bench/cli_process.py`'s N-case config (DuckDB store, default N 20,000) in this
process, with the fold's lookups counted: every call of `EventColumns.__contains__`, `get`,
`__getitem__` and `value`, every key a `rows_of` or a `reader`'s function is asked about,
and `Outcomes.get` and `in` (the interpreter's questions about a key's outcome, each of which
asks the fold), each by the function that made it. Then each kind of lookup timed on a fold
of N trials (`time.process_time`, the same keys, µs a lookup), held keys and missing ones.

Usage: `python bench/fold_lookups.py [N]`. Prints the load average.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average, write_config

Counts = collections.Counter[tuple[str, str]]


def _caller(depth: int) -> str:
    frame = sys._getframe(depth)
    return f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}"


def _counted(counts: Counts, kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def counting(*args: Any, **kwargs: Any) -> Any:
        counts[(kind, _caller(2))] += 1
        return method(*args, **kwargs)

    return counting


def _counted_keys(counts: Counts, kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def counting(self: Any, keys: Iterable[str]) -> Iterator[int]:
        caller = _caller(2)
        for row in method(self, keys):
            counts[(kind, caller)] += 1
            yield row

    return counting


def _counted_reader(counts: Counts, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def counting(self: Any, *names: str) -> Callable[[str], Any]:
        caller, fields = _caller(2), method(self, *names)

        def read(key: str) -> Any:
            counts[("EventColumns.reader()", caller)] += 1
            return fields(key)

        return read

    return counting


def count_lookups(n: int) -> Counts:
    """The fold's lookups of one `themis run` of `n` trials, by kind and caller."""
    from themis.app.cli.console import main
    from themis.app.execution.outcomes import Outcomes
    from themis.core.event_columns import EventColumns

    counts: Counts = collections.Counter()
    originals = [(EventColumns, vars(EventColumns).copy()), (Outcomes, vars(Outcomes).copy())]
    for name in ("__contains__", "get", "__getitem__", "value"):
        setattr(
            EventColumns,
            name,
            _counted(counts, f"EventColumns.{name}", getattr(EventColumns, name)),
        )
    EventColumns.rows_of = _counted_keys(counts, "EventColumns.rows_of", EventColumns.rows_of)  # type: ignore[method-assign]
    EventColumns.reader = _counted_reader(counts, EventColumns.reader)  # type: ignore[method-assign]
    for name in ("get", "__contains__"):
        setattr(Outcomes, name, _counted(counts, f"Outcomes.{name}", getattr(Outcomes, name)))
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), n)
        store = Path(folder) / "bench.duckdb"
        argv = sys.argv
        sys.argv = ["themis", "run", str(config), "--store", str(store), "--quiet", "--json"]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the run's report, not wanted here
                main()
        except SystemExit as ending:
            if ending.code:
                raise
        finally:
            sys.argv = argv
            for cls, held in originals:  # the lookups timed next are the uncounted ones
                for name, value in held.items():
                    if callable(value):
                        setattr(cls, name, value)
    return counts


def time_lookups(n: int) -> dict[str, float]:
    """µs a lookup of each kind, on a fold of `n` trials' events, held keys and missing ones."""
    from fold_memory import fold, trial_events

    from themis.app.execution.outcomes import Outcomes

    record, events = trial_events(n)
    projection = fold(events)
    keys, ids = list(record.trial_keys), list(record.trial_ids)
    missing = [key[::-1] for key in keys]
    generations, parses = projection._generations, projection._parses
    outcomes = Outcomes(projection, 1)
    kinds: dict[str, Callable[[], object]] = {
        "generations: key in (held)": lambda: [key in generations for key in keys],
        "generations: key in (missing)": lambda: [key in generations for key in missing],
        "generations.get (missing)": lambda: [generations.get(key) for key in missing],
        "parses.value(id, 'epoch') (held)": lambda: [parses.value(i, "epoch") for i in ids],
        "Outcomes: key in (missing)": lambda: [key in outcomes for key in missing],
        "Outcomes.get (missing)": lambda: [outcomes.get(key) for key in missing],
        "rows_of (held)": lambda: list(generations.rows_of(keys)),
        "dict lookup (held), for scale": lambda: [key in generations._rows for key in keys],
    }
    spent = {}
    for kind, run in kinds.items():
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            run()
            best = min(best, time.process_time() - started)
        spent[kind] = best / n * 1e6
    return spent


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(f"the fold's lookups in `themis run` of {n:,} trials (load average {load_average()})")
    counts = count_lookups(n)
    total = 0.0
    for (kind, caller), count in sorted(counts.items(), key=lambda item: -item[1]):
        if count >= n // 10:
            total += count / n
            print(f"  {count / n:>6.2f} a trial  {kind:<28} from {caller}")
    print(f"  {total:>6.2f} a trial  in all (kinds at least 0.1 a trial)")
    print(f"µs a lookup, on a fold of {n:,} trials (load average {load_average()})")
    for kind, cost in time_lookups(n).items():
        print(f"  {cost:>6.3f}  {kind}")


if __name__ == "__main__":
    main()

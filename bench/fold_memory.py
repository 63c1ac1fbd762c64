"""What a run's fold holds per trial, part by part, and what folding a trial costs.

On the overhead benchmark's experiment (`bench/resume.py`'s: 1 fake model with skill 0.7, 1
prompt, 1 sample, the `number` parser, 2 metrics), N trials (default 100,000): the plan is
recorded as a run records it (`PlanRecord.tap`), the scripted model answers, the run's
`RunStarted` and each trial's 3 events are built as the interpreter builds them, and a
`Projection` folds them in 1,000-event batches. Then, with the events and plans let go of (as
a run lets go of them), a `sys.getsizeof` walk of the fold and the plan record, by part: the
key indexes (dicts, or a large run's `KeyIndex`es, ADR 0090), the row-number ints dicts share,
the key columns, the trial keys and ids themselves (`str` objects, counted once wherever they
are held), the texts (generation, parsed answer: `str` objects, or a large run's `PackedTexts`,
ADR 0095), the other columns; and tracemalloc's count of what the fold allocated (not the
texts' `str` objects, which the events made). Last, the fold's CPU: `Projection.apply` of the
same events into a fresh fold, `REPEATS` times (CPU µs a trial, `time.process_time`).

Usage: `python bench/fold_memory.py [N]`. Prints the load average.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_process import load_average
from trial_events import answered

BATCH = 1000
REPEATS = 3
KEY_FIELDS = ("trial_key", "trial_id")
TEXT_FIELDS = ("text", "answer")


def trial_events(n: int) -> tuple[Any, list[Any]]:
    """The plan record of an n-trial run and its trials' events, as a run makes them."""
    from resume import experiment

    from themis.core.events import RunStarted
    from themis.core.planner import PlanRecord, plan

    compiled = experiment(n).compiled
    record = PlanRecord(compiled.trial_count)  # its keys as bytes in a large run (ADR 0090)
    started = RunStarted(at=0.0, planned=compiled.trial_count, execution=1)
    return record, [started, *answered(compiled, record.tap(plan(compiled)))]


def fold(events: list[Any]) -> Any:
    from themis.core.state import Projection

    projection = Projection()
    for first in range(0, len(events), BATCH):
        projection.apply(events[first : first + BATCH])
    return projection


def held_bytes(held: Any, counted: set[int]) -> int:
    """A column's or key index's own containers (a list's pointers, an array's values, the
    bytes and table of a `KeyIndex` or `HexStrings`, ADR 0080), each counted once."""
    if held is None or id(held) in counted:
        return 0
    counted.add(id(held))
    if isinstance(held, tuple) or (
        isinstance(held, list) and held and isinstance(held[0], array | tuple)
    ):  # a `PackedTimes`'s blocks (ADR 0102)
        return sys.getsizeof(held) + sum(held_bytes(item, counted) for item in held)
    if isinstance(held, list | array | dict | bytearray):
        return sys.getsizeof(held)
    parts = (
        "_bytes",
        "_slots",
        "_others",
        "_other_keys",
        "_starts",
        "_lengths",
        "_own",
        "_state",
        "_codes",
        "_objects",
        "_table",
        "_list",
    )
    return sum(held_bytes(getattr(held, part), counted) for part in parts if hasattr(held, part))


def walk(projection: Any, record: Any, n: int) -> dict[str, float]:
    """Bytes a trial of what the fold and the plan record hold, by part (see the docstring)."""
    from themis.core import event_columns

    maps = [projection._generations, projection._parses, projection._scores]
    parts: dict[str, int] = dict.fromkeys(
        (
            "key indexes",
            "row-number ints (shared)",
            "key columns",
            "trial keys and ids (str)",
            "texts (str)",
            "other columns (lists, arrays)",
            "plan record",
        ),
        0,
    )
    counted: set[int] = set()
    strings: set[int] = set()
    for held in maps:
        parts["key indexes"] += held_bytes(held._rows, counted)
        for name, column in zip(held._layout.names, held._columns, strict=True):
            size = held_bytes(column, counted)
            if name in KEY_FIELDS:
                parts["key columns"] += size
            elif name in TEXT_FIELDS and not isinstance(column, list):  # `PackedTexts`
                parts["texts (str)"] += size
            else:
                parts["other columns (lists, arrays)"] += size
            if not isinstance(column, list):
                continue
            part = (
                "trial keys and ids (str)"
                if name in KEY_FIELDS
                else "texts (str)"
                if name in TEXT_FIELDS
                else None
            )
            if part is None:
                continue
            for value in column:
                if type(value) is str and id(value) not in strings:
                    strings.add(id(value))
                    parts[part] += sys.getsizeof(value)
    numbers = event_columns._ROW_NUMBERS  # (made for dicts of keys only)
    parts["row-number ints (shared)"] = sys.getsizeof(numbers) + sum(
        sys.getsizeof(number) for number in numbers[257:]
    )
    for held_list in (record.trial_ids, record.trial_keys):
        parts["plan record"] += held_bytes(held_list, counted)
        if not isinstance(held_list, list):  # keys held as bytes: no `str` of them is held
            continue
        for value in held_list:
            if id(value) not in strings:
                strings.add(id(value))
                parts["trial keys and ids (str)"] += sys.getsizeof(value)
    return {part: size / n for part, size in parts.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"fold of {n:,} trials (load average {load_average()})")
    record, events = trial_events(n)
    gc.collect()
    tracemalloc.start()
    projection = fold(events)
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"  tracemalloc, allocated by the fold: {traced / n:.0f} B a trial")
    spent = []
    for _ in range(REPEATS):
        gc.collect()
        started = time.process_time()
        fold(events)
        spent.append((time.process_time() - started) / n * 1e6)
    print("  Projection.apply: " + ", ".join(f"{cost:.2f}" for cost in spent) + " µs a trial")
    del events
    gc.collect()
    parts = walk(projection, record, n)
    for part, size in parts.items():
        print(f"  {part:<32} {size:>7.0f} B a trial")
    print(f"  {'sum':<32} {sum(parts.values()):>7.0f} B a trial")


if __name__ == "__main__":
    main()

"""What one row of `themis compare` costs, by the number of paired cases and the kind of scores.

*few values*: two sides of 0/1 scores, three samples per case (so the sign-flip test and the
bootstrap run: one sample per case takes McNemar's exact test instead); the case differences
take seven values, so both resample by counting (ADR 0043). *continuous*: one score in [0, 1]
per case, every difference distinct, so both draw every case each round (ADR 0033). The default
resampling (1,000 bootstrap rounds, 5,000 sign-flip rounds). Prints wall and CPU seconds per row
and the share of the bootstrap and the sign-flip test. Usage: `python bench/compare.py`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from themis.core.comparison import Resampling, compare_cases
from themis.core.paired import bootstrap_ci, sign_flip_p
from themis.core.seeded import SeededGenerator

Side = dict[str, list[float]]


def few_values(draw: random.Random, n: int) -> tuple[Side, Side]:
    a = {f"c{i}": [float(draw.random() < 0.6) for _ in range(3)] for i in range(n)}
    b = {f"c{i}": [float(draw.random() < 0.65) for _ in range(3)] for i in range(n)}
    return a, b


def continuous(draw: random.Random, n: int) -> tuple[Side, Side]:
    a = {f"c{i}": [draw.random()] for i in range(n)}
    b = {f"c{i}": [min(1.0, draw.random() + 0.02)] for i in range(n)}
    return a, b


def main() -> None:
    designs: dict[str, Callable[[random.Random, int], tuple[Side, Side]]] = {
        "few values": few_values,
        "continuous": continuous,
    }
    for name, design in designs.items():
        draw = random.Random(1)
        for n in (100, 1_000, 5_000, 50_000):
            a, b = design(draw, n)
            differences = [sum(b[case]) / len(b[case]) - sum(a[case]) / len(a[case]) for case in a]
            wall, cpu = time.perf_counter(), time.process_time()
            compare_cases("g", "m", a, b, Resampling())
            row = (time.perf_counter() - wall, time.process_time() - cpu)
            cpu = time.process_time()
            bootstrap_ci(differences, 1_000, SeededGenerator(1))
            boot = time.process_time() - cpu
            cpu = time.process_time()
            sign_flip_p(differences, 5_000, SeededGenerator(1))
            flip = time.process_time() - cpu
            print(
                f"{name:<10} {n:>6} cases: row {row[0]:.3f} s wall, {row[1]:.3f} s CPU "
                f"(bootstrap {boot:.3f} s, sign-flip {flip:.3f} s CPU)"
            )


if __name__ == "__main__":
    main()

"""What one row of `themis compare` costs, by the number of paired cases.

Two sides of 0/1 scores, three samples per case (so the sign-flip test and the bootstrap run:
the slow path; one sample per case takes McNemar's exact test instead), with the default
resampling (1,000 bootstrap rounds, 5,000 sign-flip rounds). Prints wall and CPU seconds per row
and the share of the bootstrap and the sign-flip test. Usage: `python bench/compare.py`.
"""

from __future__ import annotations

import random
import time

from themis.core.comparison import Resampling, compare_cases
from themis.core.paired import bootstrap_ci, sign_flip_p
from themis.core.seeded import SeededGenerator


def main() -> None:
    draw = random.Random(1)
    for n in (100, 1_000, 5_000, 50_000):
        a = {f"c{i}": [float(draw.random() < 0.6) for _ in range(3)] for i in range(n)}
        b = {f"c{i}": [float(draw.random() < 0.65) for _ in range(3)] for i in range(n)}
        differences = [sum(b[case]) / 3 - sum(a[case]) / 3 for case in a]
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
            f"{n:>5} cases: row {row[0]:.2f} s wall, {row[1]:.2f} s CPU "
            f"(bootstrap {boot:.2f} s, sign-flip {flip:.2f} s CPU)"
        )


if __name__ == "__main__":
    main()

"""What the compile-time config checks cost on a large dataset: every prompt rendered per case.

`python bench/config_checks.py [CASES ...]` builds a dataset of CASES inline cases and times
`themis.core.checks.config_problems` for two prompts: one that only substitutes fields (the
renderer's fast path) and one with Jinja2 logic (a filter and a condition). Prints seconds and
microseconds per case and prompt; the checks render each (case, prompt) once.
"""

from __future__ import annotations

import sys
import time

from themis.core.checks import config_problems
from themis.core.runtime import RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)

PROMPTS = {
    "substitution": PromptSpec(name="plain", template="Answer with a number.\n{{ question }}"),
    "jinja2 logic": PromptSpec(
        name="logic",
        template="{% if question %}Q: {{ question | trim }}{% endif %} ({{ id }})",
        system="Be brief.",
    ),
}


def spec(cases: int, prompt: PromptSpec) -> ExperimentSpec:
    rows = tuple(
        Case(id=f"c{i}", fields={"question": f"What is {i} + {i}?", "answer": str(2 * i)})
        for i in range(cases)
    )
    return ExperimentSpec(
        seed=1,
        samples=1,
        datasets=(DatasetSpec(name="d", cases=rows),),
        models=(ModelSpec(name="m", model="fake-m"),),
        prompts=(prompt,),
        parser=ParserSpec(name="number"),
        metrics=(MetricSpec(name="numeric_match"),),
    )


def main(sizes: list[int]) -> None:
    print(f"{'cases':>9} {'prompt':>13} {'seconds':>8} {'µs/case':>8}")
    for cases in sizes:
        for label, prompt in PROMPTS.items():
            experiment = spec(cases, prompt)
            started = time.perf_counter()
            problems = config_problems(experiment, RuntimeConfig())
            elapsed = time.perf_counter() - started
            assert not problems, problems
            print(f"{cases:>9,} {label:>13} {elapsed:>8.3f} {elapsed / cases * 1e6:>8.2f}")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [10_000, 100_000])

"""What a report costs on a large run: building it (default grouping and a breakdown) and
rendering every format, from an in-memory state of N trials (default 100,000: 5,000 cases × 2
models × 2 prompts × 5 samples, one 0/1 metric, every trial scored).

CPU seconds (`time.process_time`, best of 3) are printed beside wall seconds, since the machine
may be shared: CPU time is what the code costs, wall time what a user waits.
Usage: `python bench/report.py [N]`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

N = 100_000


def _state(n: int) -> tuple[Any, Any]:
    from themis.core.events import GenerationCompleted, ParseCompleted, ScoreCompleted
    from themis.core.planner import compile_run, plan
    from themis.core.spec import (
        Case,
        DatasetSpec,
        ExperimentSpec,
        MetricSpec,
        ModelSpec,
        ParserSpec,
        PromptSpec,
    )
    from themis.core.state import project

    cases = tuple(
        Case(id=f"c{i}", fields={"a": i, "level": "odd" if i % 2 else "even"}, expected=str(i))
        for i in range(max(1, n // 20))
    )
    spec = ExperimentSpec(
        name="report-bench",
        seed=1,
        samples=5,
        datasets=(DatasetSpec(name="d", cases=cases),),
        models=(ModelSpec(name="m0", model="f0"), ModelSpec(name="m1", model="f1")),
        prompts=(
            PromptSpec(name="p0", template="{{ a }}"),
            PromptSpec(name="p1", template="a = {{ a }}"),
        ),
        parser=ParserSpec(name="number"),
        metrics=(MetricSpec(name="exact_match"),),
    )
    compiled = compile_run(spec)
    events: list[Any] = []
    for index, trial in enumerate(plan(compiled)):
        key, tid = trial.trial_key, trial.trial_id
        events += [
            GenerationCompleted(at=1.0, trial_key=key, text=f"<b>{index}</b>"),
            ParseCompleted(at=2.0, trial_id=tid, trial_key=key, answer=str(index % 7)),
            ScoreCompleted(
                at=3.0, trial_id=tid, trial_key=key, scores={"exact_match": index % 3 == 0}
            ),
        ]
    return compiled, project(events)


def _best(action: Callable[[], Any]) -> tuple[float, float]:
    """(CPU s, wall s) of the fastest of three calls."""
    timings = []
    for _ in range(3):
        cpu, wall = time.process_time(), time.perf_counter()
        action()
        timings.append((time.process_time() - cpu, time.perf_counter() - wall))
    return min(timings)


def main(n: int) -> None:
    from themis.app.render.report_formats import report_csv, report_latex, report_markdown
    from themis.app.render.report_html import report_html
    from themis.app.render.report_json import document_json
    from themis.app.usecases.reporting import MAX_CASE_ROWS, ReportDocument
    from themis.core.breakdown import Breakdown
    from themis.core.case_results import case_results
    from themis.core.report import build_report

    compiled, state = _state(n)
    print(f"{compiled.trial_count} trials")
    by = Breakdown.of(["model,level"])
    for label, action in (
        ("build_report (dataset × model × prompt)", lambda: build_report(compiled, state)),
        ("build_report (--by model,level)", lambda: build_report(compiled, state, by=by)),
    ):
        cpu, wall = _best(action)
        print(f"{label}: {cpu:.3f} s CPU, {wall:.3f} s wall")
    cases = tuple(islice(case_results(compiled, state), MAX_CASE_ROWS))
    document = ReportDocument(
        report=build_report(compiled, state),
        metrics=("exact_match",),
        created_at=0.0,
        cases=cases,
        case_count=compiled.trial_count,
    )
    cpu, wall = _best(lambda: list(case_results(compiled, state)))
    print(f"case_results (every trial): {cpu:.3f} s CPU, {wall:.3f} s wall")
    for label, render in (
        ("md", report_markdown),
        ("csv", report_csv),
        ("latex", report_latex),
        ("json", document_json),
        (f"html ({len(cases)} case rows)", report_html),
    ):
        cpu, wall = _best(lambda render=render: render(document))
        size = len(str(render(document)).encode())
        print(f"render {label}: {cpu:.3f} s CPU, {wall:.3f} s wall, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N)

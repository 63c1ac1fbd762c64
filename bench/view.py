"""How long each page of `themis view` takes on a 100,000-trial run.

Builds one run of N trials (default 100,000: N/2 cases × 2 scripted models without latency,
one prompt, one sample, two metrics) in a temporary DuckDB file, then requests each page and
JSON endpoint through Starlette's TestClient (the application's own time, no network) a few
times and prints the median and the slowest, in milliseconds. The issue's target: every page
under 300 ms on this machine kind.

Usage: `python bench/view.py [N] [REPEATS]`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

N = 100_000
REPEATS = 5


def experiment(n: int) -> object:
    import themis

    cases = [
        themis.Case(id=str(i), fields={"question": f"What is {i} + 1?"}, expected=str(i + 1))
        for i in range(n // 2)
    ]
    spec = themis.ExperimentSpec(
        name=f"view-{n}",
        seed=1,
        samples=1,
        datasets=[themis.DatasetSpec(name="synthetic", cases=cases)],
        models=[
            themis.ModelSpec(name="good", model="fake-good", options={"skill": 0.8}),
            themis.ModelSpec(name="poor", model="fake-poor", options={"skill": 0.5}),
        ],
        prompts=[themis.PromptSpec(name="p", template="{{ question }}")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="numeric_match"), themis.MetricSpec(name="exact_match")],
    )
    return themis.Experiment.from_spec(spec)


def main(n: int, repeats: int) -> None:
    from starlette.testclient import TestClient

    import themis

    with tempfile.TemporaryDirectory() as directory:
        store = Path(directory) / "s.duckdb"
        started = time.perf_counter()
        run_id = experiment(n).run(store=store, progress="off").run_id  # type: ignore[attr-defined]
        print(f"run of {n} trials: {time.perf_counter() - started:.1f} s")
        run = run_id[:12]
        pages = {
            "runs list": "/",
            "api runs": "/api/runs",
            "run": f"/runs/{run}",
            "api run": f"/api/runs/{run}",
            "trials page 1000": f"/api/runs/{run}/trials?offset=50000",
            "trials search": f"/api/runs/{run}/trials?q=poor+failed",
            "trials sorted": f"/api/runs/{run}/trials?sort=latency_s&desc=1",
            "case": f"/runs/{run}/cases/4242",
            "api case": f"/api/runs/{run}/cases/4242",
            "compare models": f"/compare?a={run}&models=good,poor",
            "api compare": f"/api/compare?a={run}&models=good,poor",
        }
        with TestClient(themis.viewer_app(store)) as client:
            print(f"{'page':<18} {'median ms':>10} {'max ms':>8}")
            for name, path in pages.items():
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (path, response.text[:200])
                print(f"{name:<18} {statistics.median(times):>10.0f} {max(times):>8.0f}")


if __name__ == "__main__":
    arguments = [int(arg) for arg in sys.argv[1:]]
    main(arguments[0] if arguments else N, arguments[1] if len(arguments) > 1 else REPEATS)

"""How long each page of `themis view` takes on a 100,000-trial run, first load and warm.

Builds, in one DuckDB file (kept at `--store PATH` if given, and reused when it exists), one
run of N trials (default 100,000: N/2 cases × 2 scripted models without latency, one prompt,
one sample, two metrics), two runs of one model each on the same N/2 cases (N trials in all:
a comparison of two runs), and one run of three models (3N/2 trials: a comparison of two of
its models), then requests each page and JSON endpoint through Starlette's TestClient (the
application's own time, no network):

- *on demand*: a fresh viewer, each page's first request (nothing prepared), then the median
  of REPEATS more (warm), each with its wall and CPU milliseconds (CPU: this process's, every
  thread; the machine is shared, so CPU is the figure to trust under load);
- *prepared*: a fresh viewer started as `themis view` starts it (`warm=True`): how long its
  preparation of the stored runs takes, then each page's first request after it; the two-run
  and the three-model comparisons are not prepared (nothing can guess them), so their first
  request is the one a user pays.

The issue's target: every page under 300 ms on this machine kind.
Usage: `python bench/view.py [N] [REPEATS] [--store PATH] [--prepared | --fresh]` (`--prepared`:
only the prepared viewer; `--fresh`: only each page's first request, each on a viewer of its
own, after the runs list).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N = 100_000
REPEATS = 5


MODELS = {"good": 0.8, "poor": 0.5, "fair": 0.65}


def experiment(n: int, models: tuple[str, ...] = ("good", "poor")) -> object:
    import themis

    cases = [
        themis.Case(id=str(i), fields={"question": f"What is {i} + 1?"}, expected=str(i + 1))
        for i in range(n // 2)
    ]
    spec = themis.ExperimentSpec(
        name=f"view-{n}" if models == ("good", "poor") else f"view-{n}-{'-'.join(models)}",
        seed=1,
        samples=1,
        datasets=[themis.DatasetSpec(name="synthetic", cases=cases)],
        models=[
            themis.ModelSpec(name=name, model=f"fake-{name}", options={"skill": MODELS[name]})
            for name in models
        ],
        prompts=[themis.PromptSpec(name="p", template="{{ question }}")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="numeric_match"), themis.MetricSpec(name="exact_match")],
    )
    return themis.Experiment.from_spec(spec)


def pages(run: str, single: tuple[str, str], three: str) -> dict[str, str]:
    two_runs = f"a={single[0]}&b={single[1]}"
    return {
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
        "compare page 2": f"/compare?a={run}&models=good,poor&offset=50",
        "compare two runs": f"/compare?{two_runs}",
        "api compare runs": f"/api/compare?{two_runs}",
        "compare 2 of 3": f"/compare?a={three}&models=fair,good",
        "api compare 2 of 3": f"/api/compare?a={three}&models=fair,good",
    }


def timed(client: Any, path: str) -> tuple[float, float]:
    """Wall and CPU milliseconds of one request."""
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.get(path)
    assert response.status_code == 200, (path, response.text[:200])
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


Runs = tuple[str, tuple[str, str], str]


def on_demand(store: Path, runs: Runs, repeats: int) -> None:
    from starlette.testclient import TestClient

    import themis

    print(f"\non demand (load {os.getloadavg()[0]:.1f})")
    print(f"{'page':<18} {'first ms':>9} {'cpu ms':>7} {'warm ms':>8} {'cpu ms':>7}")
    with TestClient(themis.viewer_app(store)) as client:
        for name, path in pages(*runs).items():
            first = timed(client, path)
            warm = [timed(client, path) for _ in range(repeats)]
            wall = statistics.median(time for time, _ in warm)
            cpu = statistics.median(cpu for _, cpu in warm)
            print(f"{name:<18} {first[0]:>9.0f} {first[1]:>7.0f} {wall:>8.0f} {cpu:>7.0f}")


def fresh(store: Path, runs: Runs) -> None:
    """Each page's first request on a viewer of its own that was asked nothing before (but the
    runs list, as a person arrives): what a page costs alone, whatever the bench's order."""
    from starlette.testclient import TestClient

    import themis

    print(f"\nfresh viewer per page (load {os.getloadavg()[0]:.1f})")
    print(f"{'page':<18} {'first ms':>9} {'cpu ms':>7}")
    for name, path in pages(*runs).items():
        with TestClient(themis.viewer_app(store)) as client:
            client.get("/api/runs")
            first = timed(client, path)
            print(f"{name:<18} {first[0]:>9.0f} {first[1]:>7.0f}")


def prepared(store: Path, runs: Runs) -> None:
    from starlette.testclient import TestClient

    import themis

    app = themis.viewer_app(store, warm=True)
    wall, cpu = time.perf_counter(), time.process_time()
    with TestClient(app) as client:
        app.state.warming.join()
        took = (time.perf_counter() - wall, time.process_time() - cpu)
        print(f"\nprepared (load {os.getloadavg()[0]:.1f}): preparing took {took[0]:.1f} s wall,")
        print(f"{took[1]:.1f} s CPU; then each page's first request:")
        print(f"{'page':<18} {'first ms':>9} {'cpu ms':>7}")
        for name, path in pages(*runs).items():
            first = timed(client, path)
            print(f"{name:<18} {first[0]:>9.0f} {first[1]:>7.0f}")


def main(n: int, repeats: int, kept: str | None, mode: str = "") -> None:
    import themis

    with tempfile.TemporaryDirectory() as directory:
        store = Path(kept) if kept else Path(directory) / "s.duckdb"
        started = time.perf_counter()
        ids = [
            experiment(n, models).run(store=store, progress="off").run_id[:12]  # type: ignore[attr-defined]
            for models in (("good", "poor"), ("good",), ("poor",), ("good", "poor", "fair"))
        ]
        print(f"runs of {n} trials: {time.perf_counter() - started:.1f} s (reused if stored)")
        del themis
        runs = (ids[0], (ids[1], ids[2]), ids[3])
        if mode == "fresh":
            fresh(store, runs)
            return
        if mode != "prepared":
            on_demand(store, runs, repeats)
        prepared(store, runs)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    kept = None
    if "--store" in arguments:
        at = arguments.index("--store")
        kept = arguments[at + 1]
        del arguments[at : at + 2]
    modes = [arg.removeprefix("--") for arg in arguments if arg in ("--prepared", "--fresh")]
    numbers = [int(arg) for arg in arguments if not arg.startswith("--")]
    mode = modes[0] if modes else ""
    main(numbers[0] if numbers else N, numbers[1] if len(numbers) > 1 else REPEATS, kept, mode)

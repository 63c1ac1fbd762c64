"""What watching a run live costs the run: a run of N trials (default 20,000: N/2 cases × 2
scripted models without latency, one prompt, one sample, two metrics) executed three ways in
fresh DuckDB files, each timed (wall and this process's CPU, every thread):

- *plain*: `Experiment.run(path)`;
- *viewer, unwatched*: inside `themis.live_viewer(path)`, on `viewer.store`;
- *viewer, watched*: the same, while another process polls as an open run page does
  (`/api/live` and `/api/runs/RUN/latest` once a second; the run page following the run:
  the page `/runs/RUN` at most every 2 s and never sooner than 4 times its last answer took,
  as live.js does) and loads the whole run page every `PAGE_EVERY` seconds; it reports the
  median and worst milliseconds of each request.

Then the watched viewer is released (the run is over): how long its preparation of the
finished run takes (`viewer.preparing`), and each page's first request once it is done.

The poller is a separate process, so its own CPU is not counted. The machine is shared: trust
CPU seconds over wall time under load. Usage:
`python bench/live_view.py [N] [--watched-only] [--follow-only] [--refreshes] [--first]`
(`--watched-only`: only the watched run; `--follow-only`: the poller loads no whole page, as a
person who keeps the run page open without reloading it; `--refreshes`: only the CPU of each
refresh of a followed run page, measured alone: a finished run's log set back to its first
half (no checkpoint, no kept places, as while it runs) and logged again in `STEPS` steps, the
run page asked after each, in this process, with nothing else running; `--first`: the first
run page of a run executing inside `themis.live_viewer`, asked while the run is held at half
way (every model call after the first N/2 waits for a gate, so the process does nothing else),
then it again, the first trials page at N/2 and the first case page, then the run page once the
gate opens and the run ends).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

N = 20_000
PAGE_EVERY = 5.0
STEPS = 20

POLLER = """
import json, statistics, sys, time, httpx
url, page_every = sys.argv[1], float(sys.argv[2])
times = {"live": [], "latest": [], "follow": [], "page": []}
last_page = 0.0
next_follow = 0.0
with httpx.Client(base_url=url, timeout=60) as client:
    while True:
        try:
            start = time.perf_counter()
            running = client.get("/api/live").json()["runs"]
            times["live"].append(time.perf_counter() - start)
        except httpx.HTTPError:
            break
        if running:
            run = running[0]["run_id"]
            start = time.perf_counter()
            client.get(f"/api/runs/{run}/latest")
            times["latest"].append(time.perf_counter() - start)
            if time.monotonic() >= next_follow:
                start = time.perf_counter()
                client.get(f"/runs/{run}")
                took = time.perf_counter() - start
                times["follow"].append(took)
                next_follow = time.monotonic() + max(2.0, 4 * took)
            if time.monotonic() - last_page >= page_every:
                start = time.perf_counter()
                client.get(f"/runs/{run}")
                times["page"].append(time.perf_counter() - start)
                last_page = time.monotonic()
        elif times["latest"]:
            break
        time.sleep(1.0)
summary = {
    name: {"n": len(values), "median_ms": 1000 * statistics.median(values),
           "max_ms": 1000 * max(values)}
    for name, values in times.items() if values
}
print(json.dumps(summary), flush=True)
"""


def experiment(n: int) -> Any:
    import themis

    cases = [
        themis.Case(id=str(i), fields={"question": f"What is {i} + 1?"}, expected=str(i + 1))
        for i in range(n // 2)
    ]
    spec = themis.ExperimentSpec(
        name=f"live-{n}",
        seed=7,
        samples=1,
        datasets=[themis.DatasetSpec(name="sums", cases=cases)],
        models=[
            themis.ModelSpec(name="good", model="good-1", provider="fake", options={"skill": 0.9}),
            themis.ModelSpec(name="poor", model="poor-1", provider="fake", options={"skill": 0.5}),
        ],
        prompts=[themis.PromptSpec(name="plain", template="{{ question }}")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="numeric_match"), themis.MetricSpec(name="exact_match")],
    )
    return themis.Experiment.from_spec(spec)


def timed(action: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def refreshes(n: int, root: Path) -> None:
    """Each refresh of a followed run page alone: process CPU and wall per page asked."""
    from starlette.testclient import TestClient

    import themis
    from themis.adapters.stores.duckdb import DuckDBStore

    path = root / "followed.duckdb"
    wall, cpu, result = timed(lambda: experiment(n).run(path, progress="off"))
    print(f"the run               wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    run = result.run_id
    store = DuckDBStore(str(path))
    con = store.cursor()
    last = store.last_seq(run)
    # The log's rows (`event_batches`, a writer's batch each: ADR 0046) set aside from the half.
    con.execute("CREATE TABLE aside AS SELECT * FROM event_batches WHERE run_id = $1", [run])
    for table in (
        "event_batches",
        "checkpoints",
        "checkpoint_parts",
        "checkpoint_blobs",
        "trial_places",
    ):
        half = " AND seq > $2" if table == "event_batches" else ""
        con.execute(
            f"DELETE FROM {table} WHERE run_id = $1{half}", [run, last // 2][: 2 if half else 1]
        )
    app = themis.viewer_app(store)
    with TestClient(app) as client:
        for step in range(STEPS + 1):
            upto = last // 2 + (last - last // 2) * step // STEPS
            con.execute(
                "INSERT INTO event_batches SELECT * FROM aside WHERE seq > (SELECT max(seq)"
                " FROM event_batches WHERE run_id = $1) AND seq <= $2",
                [run, upto],
            )
            wall, cpu, answer = timed(lambda: client.get(f"/runs/{run}"))
            print(
                f"  refresh {step:2d} through seq {upto:7d}  {answer.status_code}"
                f"  wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms"
            )
    con.close()
    store.close()


class GatedModel:
    """The scripted model, except that every call after the first `free` waits (in a worker
    thread, so the run's writer goes on) until `gate` is set."""

    def __init__(self, free: int, gate: Any) -> None:
        import themis

        self._model = themis.ScriptedModel(themis.SystemClock())
        self._free, self._gate, self.calls = free, gate, 0

    async def generate(self, request: Any) -> Any:
        import trio

        self.calls += 1
        if self.calls > self._free:
            await trio.to_thread.run_sync(self._gate.wait, abandon_on_cancel=True)
        return await self._model.generate(request)


def first_page(n: int, root: Path) -> None:
    """The first run page of a run held at half way inside the live viewer, then the next."""
    import threading

    import httpx

    import themis

    watched = experiment(n)
    gate = threading.Event()
    with themis.live_viewer(root / "first.duckdb") as viewer:
        store = viewer.store
        thread = threading.Thread(
            target=lambda: watched.run(
                store=store, models={"fake": GatedModel(n // 2, gate)}, progress="off"
            )
        )
        thread.start()
        try:
            with httpx.Client(base_url=viewer.url, timeout=600) as client:
                done = -1
                while done < n // 2:  # as the run publishes it
                    time.sleep(0.5)
                    runs = client.get("/api/live").json()["runs"]
                    done = runs[0]["done"] + runs[0]["failed"] if runs else -1
                time.sleep(2.0)  # the writer's last batches of the half
                run = watched.run_id
                for label, page in (
                    ("first page, half way", f"/runs/{run}"),
                    ("second page, half way", f"/runs/{run}"),
                    ("trials at N/2, first", f"/api/runs/{run}/trials?offset={n // 2}"),
                    ("case page, first", f"/runs/{run}/cases/4242"),
                ):
                    wall, cpu, answer = timed(lambda page=page: client.get(page))
                    print(
                        f"{label:22s} {answer.status_code}  wall {wall * 1000:7.0f} ms"
                        f"  cpu {cpu * 1000:7.0f} ms  (load {os.getloadavg()[0]:.1f})"
                    )
                gate.set()
                thread.join()
                wall, cpu, answer = timed(lambda: client.get(f"/runs/{watched.run_id}"))
                print(
                    f"{'after the run ended':22s} {answer.status_code}  wall {wall * 1000:7.0f} ms"
                    f"  cpu {cpu * 1000:7.0f} ms  (load {os.getloadavg()[0]:.1f})"
                )
        finally:
            gate.set()
            thread.join()


def main() -> None:
    import themis

    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else N
    if "--first" in sys.argv:
        print(f"N = {n} trials; load average {os.getloadavg()[0]:.1f} at the start")
        with tempfile.TemporaryDirectory() as directory:
            first_page(n, Path(directory))
        return
    if "--refreshes" in sys.argv:
        print(f"N = {n} trials; load average {os.getloadavg()[0]:.1f} at the start")
        with tempfile.TemporaryDirectory() as directory:
            refreshes(n, Path(directory))
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        return
    page_every = 1e9 if "--follow-only" in sys.argv else PAGE_EVERY
    print(f"N = {n} trials; load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)

        def run(path: Path) -> Any:
            return experiment(n).run(path, progress="off")

        if "--watched-only" not in sys.argv:
            wall, cpu, _ = timed(lambda: run(root / "plain.duckdb"))
            print(f"plain               wall {wall:6.2f} s  cpu {cpu:6.2f} s")

            with themis.live_viewer(root / "unwatched.duckdb") as viewer:
                wall, cpu, _ = timed(lambda: experiment(n).run(viewer.store, progress="off"))
            print(f"viewer, unwatched   wall {wall:6.2f} s  cpu {cpu:6.2f} s")

        with themis.live_viewer(root / "watched.duckdb") as viewer:
            poller = subprocess.Popen(
                [sys.executable, "-c", POLLER, viewer.url, str(page_every)],
                stdout=subprocess.PIPE,
                text=True,
            )
            wall, cpu, result = timed(lambda: experiment(n).run(viewer.store, progress="off"))
            requests, _ = poller.communicate(timeout=600)
            print(f"viewer, watched     wall {wall:6.2f} s  cpu {cpu:6.2f} s")
            for name, numbers in json.loads(requests or "{}").items():
                print(
                    f"  {name:7s} n {numbers['n']:3d}  median {numbers['median_ms']:7.1f} ms"
                    f"  max {numbers['max_ms']:7.1f} ms"
                )
            released(viewer, result.run_id, n)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def released(viewer: Any, run: str, n: int) -> None:
    """Release the store, time each page's first request while the finished run is still
    being prepared (what the live viewer handed over answers them), then the preparation,
    then each page again (wall and this process's CPU: the server's threads included)."""
    import httpx

    wall, cpu, _ = timed(viewer.release)
    print(f"release             wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms")
    pages = {
        "run": f"/runs/{run}",
        "api run": f"/api/runs/{run}",
        "trials page": f"/api/runs/{run}/trials?offset={n // 2}",
        "trials search": f"/api/runs/{run}/trials?q=poor+failed",
        "case": f"/runs/{run}/cases/4242",
        "compare models": f"/compare?a={run}&models=good,poor",
        "runs list": "/",
    }

    def ask_each(when: str) -> None:
        print(when)
        with httpx.Client(base_url=viewer.url, timeout=600) as client:
            for name, path in pages.items():
                wall, cpu, answer = timed(lambda path=path: client.get(path))
                print(
                    f"  {name:15s} {answer.status_code}  wall {wall * 1000:7.1f} ms"
                    f"  cpu {cpu * 1000:7.1f} ms"
                )

    ask_each("while the preparation runs (its CPU counted in each page's):")
    wall, cpu, _ = timed(viewer.preparing.join)
    print(f"prepare (background, the rest) wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    ask_each("once it is done:")


if __name__ == "__main__":
    main()

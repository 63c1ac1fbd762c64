"""Instructions per call or per trial, counted by callgrind: a figure that load does not move.

On a machine shared by several busy processes, CPU seconds of one tree vary by ±15 % between
runs, so a change of a few % to the per-trial path cannot be seen in them. Callgrind counts the
instructions a process executes (all its threads, user space only; not the kernel's work in
syscalls, nor waits): each figure here is the difference between two runs of N1 and N2 calls
(or trials), divided by N2 - N1, so start-up and imports cancel out. Each tree runs once with a
few calls first, so that its `.pyc` files exist before anything is counted.

- `call LAYER` (`pool`, `adapter`, `caller`): `bench/call_path.py`'s layer, N calls with 64 in
  flight against the fake endpoint answering after 1 ms (300 and 1,300 calls);
- `trial`: `Experiment.run` of `bench/resume.py`'s scripted experiment on the in-memory store,
  256 tasks (1,000 and 3,000 trials); `trial duckdb`: the same on a DuckDB file (the writer's
  encoding, DuckDB's appends and the run's end included).

`--tree DIR` (repeatable) measures another checkout of the repository (e.g. `git archive main
| tar -x -C DIR`), run by this interpreter; trees are measured in turn, in the order given.
Usage: `python bench/instructions.py [--tree DIR ...] call caller`, `... trial [duckdb]`. Needs
`valgrind` on the PATH; one run takes minutes (callgrind runs a program ~50 times slower).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"call": (300, 1300), "trial": (1000, 3000)}


def child(tree: str, what: str, layer: str, count: int, url: str) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from cli_process import use_tree

    use_tree(tree)
    if what == "call":
        import trio
        from call_path import _drive, _trials

        trio.run(_drive, layer, _trials(count), url, 64)
    else:
        from resume import experiment

        from themis.adapters.stores.memory import MemoryStore

        run = experiment(count)
        run.compiled  # noqa: B018  (compiled before the run, as the other size's is)
        if layer != "duckdb":
            run.run(MemoryStore(), max_concurrent_tasks=256)
            return
        with tempfile.TemporaryDirectory() as folder:
            run.run(Path(folder) / "run.duckdb", max_concurrent_tasks=256)


def instructions(tree: str, what: str, layer: str, count: int, url: str) -> int:
    command = [sys.executable, __file__, "--child", tree, what, layer, str(count), url]
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"the callgrind run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("what", choices=sorted(SIZES))
    parser.add_argument("layer", nargs="?", default="caller")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.fakeserver import start_fake_server

    small, large = SIZES[args.what]
    unit = "call" if args.what == "call" else "trial"
    with start_fake_server(latency=0.001) as server:
        server.control(journal=False)
        url = server.openai_base_url
        for tree in args.tree or [str(ROOT)]:
            instructions(tree, args.what, args.layer, 5, url)  # .pyc files written
            counts = [instructions(tree, args.what, args.layer, n, url) for n in (small, large)]
            per = (counts[1] - counts[0]) / (large - small)
            label = args.layer if args.what == "call" else "Experiment.run"
            if args.what == "trial" and args.layer == "duckdb":
                label += ", DuckDB file"
            print(f"{tree}: {label}, {per / 1000:.1f}k instructions a {unit}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5], int(sys.argv[5]), sys.argv[6])
    else:
        main()

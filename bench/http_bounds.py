"""What bounds `bench/http_efficiency.py` from outside Themis: the fake server's CPU, and the
efficiency a minimal client reaches against it.

The same load as `http_efficiency.py` (N single-sample chat completions, C in flight, the fake
server of tests/fakeserver in its own process holding each answer `latency` seconds), sent by a
client with no Themis in it: a fresh Python process that imports trio, opens C keep-alive
connections with raw non-blocking sockets, and has C tasks take the next trial's request (the
body Themis sends for it, pre-built) until none is left, reading each answer by its
`content-length`. Efficiency = ceil(N/C) x latency / wall, as in `http_efficiency.py`, on the
whole process (start-up included) and on the requests alone, and the process wall split as
there (before the first call, the calls, after the last answer). The server's CPU seconds over the
run come from its `/proc/<pid>/stat`; with `--themis` each C also runs `http_efficiency.py`'s
Themis child against the same server, so both clients' rows share the load and the server.

Each row also gives the client's main thread's time waiting to run (`runqueue_wait_s`, from its
`/proc/<pid>/schedstat` read at the child's exit: runnable, but another thread or process had the
core) and its involuntary context switches. `--pin` runs every client twice in turn, with the
server free to run on any core and then held on the last core (`sched_setaffinity`), to show
whether the server taking the client's core costs the client wall time.

Usage: `python bench/http_bounds.py [--trials 10000] [--latency 0.05] [--rounds 1] [--themis]
[--pin] [C ...]` (default C: 64 256).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from http_efficiency import main_thread_schedule  # noqa: E402

from tests.fakeserver import FakeServer, start_fake_server  # noqa: E402


def _bodies(trials: int) -> list[bytes]:
    """The request bodies Themis sends for `http_efficiency.py`'s trials (same sizes)."""
    return [
        json.dumps(
            {
                "model": "bench",
                "messages": [{"role": "user", "content": f"What is {i} + {i + 1}?"}],
                "temperature": 0.0,
                "max_tokens": 16,
                "seed": 1,
            },
            separators=(",", ":"),
        ).encode()
        for i in range(trials)
    ]


def raw_child(trials: int, concurrency: int, port: int) -> None:
    """The minimal client: raw sockets on trio, C tasks, one request at a time on each."""
    import socket

    import trio

    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
        b"user-agent: bench\r\naccept: */*\r\ncontent-type: application/json\r\n"
        b"content-length: " % port
    )
    requests = [head + b"%d\r\n\r\n" % len(body) + body for body in _bodies(trials)]
    answered = [0]

    async def worker(queue: list[bytes]) -> None:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await sock.connect(("127.0.0.1", port))
        buffer = b""
        while queue:
            await sock.send(queue.pop())
            while True:
                end = buffer.find(b"\r\n\r\n")
                if end >= 0:
                    start = buffer.find(b"content-length:", 0, end) + 15
                    length = int(buffer[start : buffer.index(b"\r\n", start)])
                    if len(buffer) >= end + 4 + length:
                        buffer = buffer[end + 4 + length :]
                        answered[0] += 1
                        break
                data = await sock.recv(65536)
                if not data:
                    raise SystemExit("the server closed a connection")
                buffer += data
        sock.close()

    async def main() -> None:
        queue = requests[::-1]
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker, queue)

    cpu, started = time.process_time(), time.perf_counter()
    trio.run(main)
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "cpu_s": time.process_time() - cpu,
                "answered": answered[0],
                **main_thread_schedule(),
            }
        )
    )


SCHEDULE = ("main_cpu_s", "runqueue_wait_s", "involuntary_switches")


def _measure(command: list[str], server: FakeServer) -> dict[str, float]:
    """Run `command`; its whole-process wall and CPU, what its last stdout line reports, the
    server's CPU."""
    server_cpu = server.cpu_seconds()
    server.control(window=True)
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=out)
        _, status, usage = os.wait4(child.pid, 0)
        ended = time.monotonic()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{command[2]} failed")
        out.seek(0)
        measured = json.loads(out.read().decode().strip().splitlines()[-1])
    stats = server.stats()
    return {
        "process_wall_s": ended - started,
        "before_first_call_s": stats["first_call_at"] - started,
        "calls_s": stats["last_answer_at"] - stats["first_call_at"],
        "after_last_answer_s": ended - stats["last_answer_at"],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "run_wall_s": measured["wall_s"],
        "run_cpu_s": measured["cpu_s"],
        "server_cpu_s": server.cpu_seconds() - server_cpu,
        **{name: measured[name] for name in SCHEDULE if name in measured},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--themis", action="store_true", help="also run Themis's child")
    parser.add_argument("--pin", action="store_true", help="also with the server on one core")
    parser.add_argument("concurrency", type=int, nargs="*", default=[64, 256])
    args = parser.parse_args()
    efficiency = str(ROOT / "bench" / "http_efficiency.py")
    with start_fake_server(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        server.control(journal=False)
        for round_ in range(args.rounds):
            for concurrency in args.concurrency:
                sizes = [str(args.trials), str(concurrency)]
                clients = {"raw": [sys.executable, __file__, "--child", *sizes, str(server.port)]}
                if args.themis:
                    url = server.openai_base_url
                    clients["themis"] = [sys.executable, efficiency, "--child", *sizes, url]
                placements = [False, True] if args.pin else [False]
                for (client, base), pinned in itertools.product(clients.items(), placements):
                    command = list(base)
                    if client == "themis":  # a new store each time: a stored run is reused
                        command.append(str(Path(tmp) / f"r{round_}c{concurrency}p{pinned:d}.db"))
                    cores = sorted(os.sched_getaffinity(0))
                    os.sched_setaffinity(server.pid, cores[-1:] if pinned else cores)
                    load = os.getloadavg()[0]
                    row = _measure(command, server)
                    ideal = math.ceil(args.trials / concurrency) * args.latency
                    print(
                        json.dumps(
                            {
                                "client": client,
                                "server_pinned": pinned,
                                "load_average": round(load, 2),
                                "concurrency": concurrency,
                                "ideal_s": round(ideal, 2),
                                "efficiency": round(ideal / row["process_wall_s"], 3),
                                "run_efficiency": round(ideal / row["run_wall_s"], 3),
                                **{name: round(value, 2) for name, value in row.items()},
                            }
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        raw_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()

"""How many requests per second the fake server (tests/fakeserver) sustains.

A raw asyncio load generator (no HTTP library: it costs the client as little CPU as possible, so
the number is the server's) keeps C keep-alive connections busy, each sending one chat
completion request after another, for D seconds, against a fake server in its own process that
holds every answer for L seconds. The ceiling is C / L requests per second.

Usage: `python bench/fakeserver_load.py [--connections 256] [--latency 0.05] [--seconds 5]
[--asyncio]`. Prints requests/s, the ceiling, the share of it reached, p50/p99 round trips, and
the server's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakeserver import start_fake_server

BODY = json.dumps(
    {
        "model": "bench",
        "messages": [{"role": "user", "content": "What is 17 + 25?"}],
        "max_tokens": 16,
        "temperature": 0.0,
        "seed": 1,
    }
).encode()
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    b"content-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


async def _connection(port: int, deadline: float, samples: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        samples.append(time.perf_counter() - started)
        done += 1
    writer.close()
    await writer.wait_closed()
    return done


async def _load(port: int, connections: int, seconds: float) -> tuple[int, float, list[float]]:
    samples: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    counts = await asyncio.gather(
        *(_connection(port, deadline, samples) for _ in range(connections))
    )
    return sum(counts), time.perf_counter() - started, samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio, never uvloop")
    args = parser.parse_args()
    with start_fake_server(latency=args.latency, uvloop=False if args.asyncio else None) as server:
        server.control(journal=False)
        cpu_before = server.cpu_seconds()
        client_before = time.process_time()
        count, wall, samples = asyncio.run(_load(server.port, args.connections, args.seconds))
        client_cpu = time.process_time() - client_before
        cpu = server.cpu_seconds() - cpu_before
        calls = server.stats()["calls"]
    ceiling = args.connections / args.latency if args.latency else float("inf")
    samples.sort()
    print(
        json.dumps(
            {
                "connections": args.connections,
                "latency_s": args.latency,
                "requests": count,
                "server_calls": calls,
                "wall_s": round(wall, 3),
                "requests_per_s": round(count / wall),
                "ceiling_per_s": round(ceiling) if args.latency else None,
                "share_of_ceiling": round(count / wall / ceiling, 3) if args.latency else None,
                "p50_ms": round(statistics.median(samples) * 1000, 2),
                "p99_ms": round(samples[int(len(samples) * 0.99)] * 1000, 2),
                "server_cpu_s": round(cpu, 2),
                "client_cpu_s": round(client_cpu, 2),
            }
        )
    )


if __name__ == "__main__":
    main()

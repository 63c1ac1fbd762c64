"""A project on disk whose one chat model is the fake server: the cases file and config the
fault benchmarks and the wall-clock tests share, differing only in their `[runtime]` lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakeserver.control import FakeServer

_CONFIG = """\
name = "{shape.name}"
seed = {shape.seed}
samples = 1

[[datasets]]
name = "cases"
path = "cases.jsonl"

[[models]]
name = "m"
provider = "local"
api = "chat"
model = "fake-served"
params = {{ max_tokens = 16 }}

[[prompts]]
name = "ask"
template = "{shape.template}"

[parser]
name = "number"

[[metrics]]
name = "{shape.metric}"

[runtime]
{runtime}

[runtime.endpoints.local]
base_url = "{base_url}"
"""


@dataclass(frozen=True)
class ProjectShape:
    """What a fake-served project asks: its name, seed, prompt template and metric."""

    name: str
    seed: int
    template: str
    metric: str


SUMS = ProjectShape("faults", 3, "What is {{ a }} + {{ b }}?", "numeric_match")


def sums_rows(count: int) -> list[dict[str, Any]]:
    """`count` cases asking `i + 1`, the answers the fake server's `number` replies get right."""
    return [{"id": f"q{i}", "a": i, "b": 1, "answer": str(i + 1)} for i in range(count)]


def write_project(
    directory: Path,
    server: FakeServer,
    rows: list[dict[str, Any]],
    runtime: str,
    shape: ProjectShape = SUMS,
) -> Path:
    """Write `cases.jsonl` and `project.toml` with these `[runtime]` lines; return the config."""
    (directory / "cases.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    config = directory / "project.toml"
    text = _CONFIG.format(shape=shape, runtime=runtime, base_url=server.openai_base_url)
    config.write_text(text, encoding="utf-8")
    return config

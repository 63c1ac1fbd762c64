"""A real model through the real `themis` CLI: same seed and temperature, same answers.

SmolLM2-135M-Instruct on llama.cpp (1 thread, one slot) answers 10 one-step sums at
temperature 0.7. The same config runs twice into two stores (the server's address is runtime,
passed by `--set`); both runs must hold the same generation text for every trial, and every
generation must record the model id the server reported, which is not the id that was requested.
About 4 s a run on one thread: keep cases few and `max_tokens` small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import themis_json
from tests.servers.real_model import SERVED_MODEL
from themis.adapters.stores.duckdb import DuckDBStore
from themis.core.events import GenerationCompleted

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "sums.jsonl"
CASES = 10
REQUESTED_MODEL = "smollm2-135m-instruct"  # llama.cpp serves its one model whatever is asked
CONFIG = f"""
name = "real-model-reproducibility"
seed = 31
samples = 1

[[datasets]]
name = "sums"
path = "{DATA.as_posix()}"

[[models]]
name = "smollm2"
provider = "local"
api = "chat"
model = "{REQUESTED_MODEL}"
[models.params]
temperature = 0.7
max_tokens = 16

[[prompts]]
name = "direct"
template = "Answer with a number only.\\n{{{{ question }}}}"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
max_concurrent_tasks = 2

[runtime.endpoints.local]
base_url = "http://127.0.0.1:9/v1"  # replaced by --set with the test server's address
"""


def _run(directory: Path, store: str, base_url: str) -> dict[str, Any]:
    endpoint = f"runtime.endpoints.local.base_url={base_url}"
    command = ("run", "real.toml", "--store", store, "--set", endpoint, "--json", "--quiet")
    result: dict[str, Any] = themis_json(directory, *command, timeout=300)
    return result


def _generations(store: Path, run_id: str) -> dict[str, GenerationCompleted]:
    opened = DuckDBStore(store)
    try:
        events = [event for _, event in opened.read(run_id)]
    finally:
        opened.close()
    return {event.trial_key: event for event in events if isinstance(event, GenerationCompleted)}


def _inspect(directory: Path, store: str, run_id: str, case: str) -> dict[str, Any]:
    command = ("inspect", "evaluation", run_id, "--case", case, "--store", store, "--json")
    found: dict[str, Any] = themis_json(directory, *command, timeout=60)
    return found


def test_a_seeded_run_on_a_real_model_reproduces_its_answers_and_records_the_served_model(
    real_model_url: str, tmp_path: Path
) -> None:
    (tmp_path / "real.toml").write_text(CONFIG, encoding="utf-8")
    base_url = f"{real_model_url}/v1"

    first = _run(tmp_path, "first.duckdb", base_url)
    second = _run(tmp_path, "second.duckdb", base_url)

    assert second["run_id"] == first["run_id"]  # the endpoint is runtime: the same run
    for result in (first, second):
        assert result["status"] == "completed"
        assert result["reused"] is False
        assert result["model_calls"] == CASES
        [row] = result["results"]
        assert (row["n"], row["failed"]) == (CASES, 0)
    assert first["results"] == second["results"]
    one = _generations(tmp_path / "first.duckdb", first["run_id"])
    two = _generations(tmp_path / "second.duckdb", second["run_id"])
    assert len(one) == CASES
    assert one.keys() == two.keys()
    assert {key: event.text for key, event in one.items()} == {
        key: event.text for key, event in two.items()
    }
    for event in (*one.values(), *two.values()):
        assert event.served_model == SERVED_MODEL  # what answered, not what was asked
        assert event.text.strip()
        assert event.output_tokens is not None
        assert 0 < event.output_tokens <= 16
        assert event.input_tokens
        assert event.latency_s > 0
    case = [
        _inspect(tmp_path, store, first["run_id"], "sum-01")["trials"][0]["generation"]
        for store in ("first.duckdb", "second.duckdb")
    ]
    assert case[0]["text"] == case[1]["text"]
    assert case[0]["served_model"] == case[1]["served_model"] == SERVED_MODEL

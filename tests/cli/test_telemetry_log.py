"""`--telemetry-log FILE`: every telemetry signal of a run, one JSON line each."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Invoke


def test_cli_telemetry_log_option(tmp_path: Path, invoke: Invoke) -> None:
    config_file = tmp_path / "small.toml"
    config_file.write_text(
        'seed = 1\nsamples = 1\n[[datasets]]\nname = "d"\n'
        'cases = [{ id = "a", fields = { q = "1" }, expected = "1" }]\n'
        '[[models]]\nname = "m"\nprovider = "fake"\nmodel = "f"\noptions = { skill = 1.0 }\n'
        '[[prompts]]\nname = "p"\ntemplate = "{{ q }}"\n'
    )
    log = tmp_path / "t.jsonl"
    result = invoke("run", config_file, "--store", tmp_path / "s.duckdb", "--telemetry-log", log)
    assert result.exit_code == 0, result.output
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[0] == "run_started"
    assert events[-1] == "run_finished"
    assert "trial_done" in events

"""A canary API key, set only in the environment, goes to the endpoint on every call and nowhere
else: not into the store (its file bytes and every table), the reports, the CLI's output, the
log records, any failure message or the viewer's pages, even when the server echoes the key back
in a 401.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import duckdb
import pytest
from starlette.testclient import TestClient

from tests.cli.helpers import Invoke
from tests.fakeserver import FakeServer
from themis.app.api.viewer import viewer_app

CANARY = "sk-canary-3c1f0a9d7e5b42f8"
TRACE = "trace-canary-11aa22bb33cc"

CONFIG = """
name = "secrets"
seed = 3
samples = 2

[[datasets]]
name = "sums"
cases = [
  {{ id = "s1", fields = {{ q = "2 + 3" }}, expected = "5" }},
  {{ id = "s2", fields = {{ q = "10 - 4" }}, expected = "6" }},
  {{ id = "s3", fields = {{ q = "6 * 7" }}, expected = "42" }},
]

[[models]]
name = "m"
provider = "local"
api = "chat"
model = "canary-model"

[[prompts]]
name = "p"
template = "What is {{{{ q }}}}?"

[parser]
name = "number"

[[metrics]]
name = "numeric_match"

[runtime]
generation_retry_attempts = 1

[runtime.endpoints.local]
base_url = "{base_url}"
api_key = "${{THEMIS_CANARY_KEY}}"
headers = {{ X-Trace-Token = "${{THEMIS_CANARY_TRACE}}" }}
"""


def _leaks(text: str) -> list[str]:
    return [secret for secret in (CANARY, TRACE) if secret in text]


def _tables(path: Path) -> dict[str, list[Any]]:
    with duckdb.connect(str(path), read_only=True) as connection:
        names = [row[0] for row in connection.execute("SHOW TABLES").fetchall()]
        return {name: connection.execute(f'SELECT * FROM "{name}"').fetchall() for name in names}


def _viewer_pages(store: Path, first: str, second: str) -> list[str]:
    """Every page and JSON answer of `themis view` about the two runs, in this environment."""
    paths = ["/", "/api/runs", f"/compare?a={first}&b={second}"]
    for run in (first, second):
        paths += [f"/runs/{run}", f"/api/runs/{run}", f"/api/runs/{run}/trials"]
        paths += [f"/runs/{run}/cases/s1", f"/api/runs/{run}/cases/s1"]
    pages = []
    with TestClient(viewer_app(store)) as viewer:
        for path in paths:
            page = viewer.get(path)
            assert page.status_code == 200, path
            pages.append(page.text)
    return pages


def test_the_key_reaches_the_endpoint_and_nothing_else(
    server: FakeServer,
    tmp_path: Path,
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.reset()
    monkeypatch.setenv("THEMIS_CANARY_KEY", CANARY)
    monkeypatch.setenv("THEMIS_CANARY_TRACE", TRACE)
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG
    config = tmp_path / "secrets.toml"
    config.write_text(CONFIG.format(base_url=server.openai_base_url), encoding="utf-8")
    store = tmp_path / "s.duckdb"
    outputs: list[str] = []

    def cli(*args: object, code: int = 0) -> dict[str, Any]:
        result = invoke(*args)
        outputs.extend([result.stdout, result.stderr])
        assert result.exit_code == code, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    good = cli("run", config, "--store", store, "--json")
    assert good["trials"]["scored"] == 6
    calls = server.journal()
    assert len(calls) == 6
    assert {call["headers"]["authorization"] for call in calls} == {f"Bearer {CANARY}"}
    assert {call["headers"]["x-trace-token"] for call in calls} == {TRACE}

    # The server now wants another key and echoes back the one it got, as some providers do.
    server.control(require_key="sk-the-right-one")
    bad = cli("run", config, "--store", store, "--json", "--set", "seed=4", code=1)  # all failed
    assert bad["trials"]["failed"] == 6
    for run in (good["run_id"], bad["run_id"]):
        cli("report", run, "--store", store, "--format", "json")
        cli("inspect", "snapshot", run, "--store", store, "--json")
        cli("inspect", "state", run, "--store", store, "--json")
        cli("inspect", "evaluation", run, "--case", "s1", "--store", store, "--json")
    state = cli("inspect", "state", bad["run_id"], "--store", store, "--json")
    [reason] = state["failures"]
    assert reason["kind"] == "auth"
    assert "Incorrect API key provided: ***" in reason["message"]  # the echo, redacted
    for text in (
        cli("runs", "--store", store, "--json"),
        cli("quickcheck", "--store", store, "--json"),
    ):
        outputs.append(json.dumps(text))
    for args in (("report", good["run_id"], "--store", store), ("runs", "--store", store)):
        result = invoke(*args)
        outputs.extend([result.stdout, result.stderr])
    outputs.extend(_viewer_pages(store, good["run_id"], bad["run_id"]))

    assert not _leaks("\n".join(outputs))
    records = [f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records]
    assert records  # the log was captured, so its silence about the key means something
    assert not _leaks("\n".join(records))
    for file in tmp_path.rglob("*"):
        if file.is_file() and file != config:
            data = file.read_bytes()
            assert CANARY.encode() not in data, file
            assert TRACE.encode() not in data, file
    tables = _tables(store)
    assert {"runs", "events"} <= set(tables)
    assert not _leaks(repr(tables))
    assert "${THEMIS_CANARY_KEY}" in repr(tables["runs"])  # only the reference is stored

"""The endpoint error table (`docs/reference/endpoint-errors.md`): every row it lists, classified.

Each row is checked twice: by the pure classifier, and end to end, served by the test server in
that server's own error shape and read by the HTTP adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.adapters.test_http_server import failure, fault, openai
from tests.fakeserver import FakeServer
from themis.core.retry import classify_status

TABLE = Path(__file__).parents[2] / "docs" / "reference" / "endpoint-errors.md"
SERVERS = {"vLLM", "llama.cpp", "Ollama", "TGI", "OpenAI", "Anthropic"}


def _code_span(cell: str) -> str:
    for fence in ("``", "`"):
        if cell.startswith(fence) and cell.endswith(fence):
            return cell[len(fence) : -len(fence)].strip()
    raise AssertionError(f"{TABLE.name}: message cell is not a code span: {cell!r}")


def table_rows() -> list[tuple[str, int, str, str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[1].isdigit():
            server, status, message, kind = cells
            rows.append((server, int(status), _code_span(message), kind))
    return rows


ROWS = table_rows()


def error_body(server: str, status: int, message: str) -> dict[str, Any]:
    """`message` in the JSON error shape `server` answers with."""
    if server == "Anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    if server == "Ollama":
        return {"error": message}
    if server == "TGI":
        return {"error": message, "error_type": "validation"}
    return {"error": {"message": message, "type": "invalid_request_error", "code": status}}


def test_the_table_covers_every_server_and_both_kinds() -> None:
    assert {row[0] for row in ROWS} == SERVERS
    assert {row[3] for row in ROWS} == {"context_length", "content_filter"}
    assert {row[0] for row in ROWS if row[3] == "context_length"} == SERVERS


@pytest.mark.parametrize(("provider", "status", "message", "kind"), ROWS)
def test_each_listed_message_gets_its_kind(
    provider: str, status: int, message: str, kind: str
) -> None:
    assert classify_status(status, message) == kind


@pytest.mark.parametrize(("provider", "status", "message", "kind"), ROWS)
def test_each_listed_message_served_over_http_gets_its_kind(
    fake: FakeServer, provider: str, status: int, message: str, kind: str
) -> None:
    body = error_body(provider, status, message)
    fake.control(script=fault(kind="status", status=status, body=body))
    error = failure(openai(fake))
    assert (error.kind, error.status) == (kind, status)

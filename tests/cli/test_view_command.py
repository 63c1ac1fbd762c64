"""`themis view`'s bad inputs: one `error:` line and status 2, before anything is served; a
`--host` other than loopback is warned about."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import Invoke
from themis.app.cli.view_command import is_loopback


def test_a_missing_store_is_one_line_and_status_2(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("view", "--store", tmp_path / "none.duckdb")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'none.duckdb'}: no such store (run an experiment first, or pass "
        "--store)"
    ]
    assert not (tmp_path / "none.duckdb").exists()


def test_a_port_out_of_range_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("view", "--store", tmp_path / "none.duckdb", "--port", "70000")
    assert result.exit_code == 2
    assert "error: --port 70000: must be between 0 and 65535" in result.output


def test_a_public_host_is_warned_about(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("view", "--store", tmp_path / "none.duckdb", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert result.output.startswith("warning: serving on 0.0.0.0: anyone who can reach")


def test_loopback_hosts() -> None:
    assert [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2")] == [True] * 4
    assert [is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "example.org")] == [False] * 3

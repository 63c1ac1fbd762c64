"""`themis view`'s bad inputs: one `error:` line and status 2, before anything is served; a
`--host` other than loopback is warned about."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import Invoke, one_error_line
from themis.app.api.serving import is_loopback


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


def test_run_port_or_host_without_view_is_refused(invoke: Invoke, demo: Path, store: Path) -> None:
    for option in (("--port", "0"), ("--host", "127.0.0.1")):
        line = one_error_line(invoke("run", demo, "--store", store, *option))
        assert line == "error: --port/--host: they say where --view serves; add --view"
    assert not store.exists()


def test_run_view_needs_a_store_file_and_a_valid_port(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    line = one_error_line(invoke("run", demo, "--store", "memory", "--view"))
    assert line.startswith("error: --view: the live viewer reads a DuckDB store file")
    line = one_error_line(invoke("run", demo, "--store", store, "--view", "--port", "70000"))
    assert line == "error: --port 70000: must be between 0 and 65535"
    assert not store.exists()

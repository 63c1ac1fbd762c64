"""`--help` shows what an option takes: nothing for a flag, KEY=VALUE for `--set`, never a
Python type such as `<bool>` or `<list[str]>`."""

from __future__ import annotations

import pytest

from tests.cli.helpers import Invoke

COMMANDS = [
    (),
    ("run",),
    ("resume",),
    ("replay",),
    ("report",),
    ("runs",),
    ("quickcheck",),
    ("plan",),
    ("estimate",),
    ("diff",),
    ("inspect",),
    ("inspect", "snapshot"),
    ("inspect", "state"),
    ("inspect", "evaluation"),
    ("providers",),
    ("providers", "list"),
    ("providers", "clear"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "themis")
def test_help_shows_no_python_types(invoke: Invoke, command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    for odd in ("<bool>", "list[", "<list"):
        assert odd not in result.stdout, (command, result.stdout)
    if "--set" in result.stdout:
        assert "KEY=VALUE" in result.stdout.split("--set", 1)[1].splitlines()[0]

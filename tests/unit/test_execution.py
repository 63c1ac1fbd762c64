"""Staged validation and skip-when as a pure flow, driven by scripted command outcomes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from themis.core.execution import (
    CommandOutcome,
    ExecutionVerdict,
    placeholders,
    render_command,
    render_file,
    validation_flow,
)
from themis.core.scoring import parse_code
from themis.core.spec import SkipWhen, ValidationRule

OK = CommandOutcome(exit_code=0, duration_s=0.1)
FAIL = CommandOutcome(exit_code=1, duration_s=0.1, stderr="boom")
TIMEOUT = CommandOutcome(exit_code=None, duration_s=5.0, timed_out=True)
ERROR = CommandOutcome(exit_code=None, duration_s=0.0, error="cannot start")

RULES = (
    ValidationRule(stage=2, command="pytest {test_file}"),
    ValidationRule(stage=1, command="python -m py_compile {workspace}/sol.py"),
    ValidationRule(stage=1, command="test -s sol.py"),
    ValidationRule(stage=3, command="ruff check ."),
)


def drive(
    rules: tuple[ValidationRule, ...],
    skip: SkipWhen | None,
    answer: Callable[[str], CommandOutcome],
) -> tuple[ExecutionVerdict, list[str]]:
    """Run the flow, answering each command with `answer(command)`."""
    ran: list[str] = []
    flow = validation_flow(rules, skip, {"test_file": "test me.py"}, "/ws")
    try:
        command = next(flow)
        while True:
            ran.append(command.command)
            command = flow.send(answer(command.command))
    except StopIteration as stop:
        return stop.value, ran


def test_stages_run_in_order_with_rules_of_a_stage_in_config_order() -> None:
    verdict, ran = drive(RULES, None, lambda _: OK)
    assert ran == [
        "python -m py_compile /ws/sol.py",
        "test -s sol.py",
        "pytest 'test me.py'",
        "ruff check .",
    ]
    assert (verdict.passed, verdict.failed_stage, verdict.score) == (True, None, 1.0)
    assert [run.stage for run in verdict.runs] == [1, 1, 2, 3]


def test_a_failed_stage_runs_its_other_rules_then_stops_fail_fast() -> None:
    verdict, ran = drive(RULES, None, lambda c: FAIL if "py_compile" in c else OK)
    assert ran == ["python -m py_compile /ws/sol.py", "test -s sol.py"]
    assert (verdict.passed, verdict.failed_stage, verdict.score) == (False, 1, 0.0)
    assert verdict.runs[0].outcome == FAIL


def test_a_timeout_fails_its_stage() -> None:
    verdict, ran = drive(RULES, None, lambda c: TIMEOUT if c.startswith("pytest") else OK)
    assert verdict.failed_stage == 2
    assert ran[-1] == "pytest 'test me.py'"


@pytest.mark.parametrize(
    ("skip_outcome", "skipped"),
    [(OK, True), (FAIL, False), (TIMEOUT, False), (ERROR, False)],
    ids=["exit-0-skips", "exit-1-runs", "timeout-runs", "error-runs"],
)
def test_skip_when_skips_on_exit_0_and_fails_open_otherwise(
    skip_outcome: CommandOutcome, skipped: bool
) -> None:
    skip = SkipWhen(command="grep -q done {workspace}/marker", timeout_s=2.0)
    verdict, ran = drive(RULES, skip, lambda c: skip_outcome if c.startswith("grep") else OK)
    assert ran[0] == "grep -q done /ws/marker"
    assert verdict.skipped is skipped
    assert verdict.runs[0].stage == 0
    if skipped:
        assert ran == ["grep -q done /ws/marker"]
        assert (verdict.passed, verdict.score) == (False, 0.0)
    else:
        assert len(ran) == 5
        assert verdict.passed


def test_templates_expand_once_quote_in_commands_and_keep_literal_braces() -> None:
    values = {"name": "a b; rm -rf /", "code": "{name}"}
    assert render_command("echo {name} {{x}}", values) == "echo 'a b; rm -rf /' {x}"
    assert render_file("{code}:{name}", values) == "{name}:a b; rm -rf /"
    assert placeholders("{a} {{b}} {c_1}") == {"a", "c_1"}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ValidationRule(stage=0, command="true"), "stage"),
        (lambda: ValidationRule(stage=1, command=""), "command"),
        (lambda: ValidationRule(stage=1, command="true", timeout_s=0), "timeout_s"),
        (lambda: SkipWhen(command="true", timeout_s=-1), "timeout_s"),
    ],
)
def test_rules_refuse_impossible_settings(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_the_code_parser_takes_the_block_in_its_language_else_the_whole_answer() -> None:
    answer = "Sure:\n```js\nno()\n```\n```python\ndef f():\n    return 1\n```\nDone."
    assert parse_code(answer, "python").unwrap() == "def f():\n    return 1\n"
    assert parse_code(answer, None).unwrap() == "no()\n"
    assert parse_code("```\nx = 1\n```", "python").unwrap() == "x = 1\n"  # untagged
    assert parse_code("    return a + b\n", "python").unwrap() == "    return a + b\n"
    assert parse_code("```js\nno()\n```", "python").failure() == "no python code block in response"
    assert parse_code("  \n", None).failure() == "empty response"

"""Checking generated code by running it: staged validation rules and a skip-when command.

Sans-IO: `validation_flow` is a generator that yields the shell commands to run in a candidate's
workspace and receives each `CommandOutcome`; a `SandboxPort` drives it (compare httpx's
`Auth.auth_flow`). So the decisions — which stage runs, fail-fast, skip-when's fail-open — are
pure and tested without a process.

- Rules run by `stage` (1, 2, ...), rules of one stage in the order given. When any rule of a
  stage fails, no higher stage runs and the verdict names the failed stage (fail-fast).
- `skip_when` runs first: exit 0 skips the validation (scored 0, recorded as skipped); a non-zero
  exit, a timeout or an error to start it runs the validation (fail-open).

Templates: `{name}` is replaced by the case field, `{answer}` (the parsed candidate) or
`{workspace}` (the workspace's path) in one pass, so a value is never expanded twice; `{{` and
`}}` are literal braces. In commands, values are shell-quoted; in file contents, inserted as is.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Generator, Iterable, Mapping
from pathlib import PurePosixPath

from attrs import field, frozen

from themis.core.spec import MetricSpec, SkipWhen, ValidationRule

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
WORKSPACE = "workspace"
ANSWER = "answer"


@frozen
class SandboxCommand:
    """A rendered shell command for the sandbox and its wall-clock timeout."""

    command: str
    timeout_s: float


@frozen
class CommandOutcome:
    """How one command ended: its exit code (None: killed or never started), the signal that
    ended it, whether the timeout killed it, its duration, and the tails of its output.
    `error` says why it could not start."""

    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@frozen
class StageRun:
    """One rule's run: its stage, the command as run, and how it ended."""

    stage: int
    command: str
    outcome: CommandOutcome


def _runs(value: Iterable[StageRun]) -> tuple[StageRun, ...]:
    return tuple(value)


@frozen
class ExecutionVerdict:
    """The result of a candidate's validation: passed (every stage), skipped, or the first
    stage that failed; `runs` holds every command run (the skip-when check as stage 0)."""

    passed: bool
    skipped: bool = False
    failed_stage: int | None = None
    runs: tuple[StageRun, ...] = field(default=(), converter=_runs)

    @property
    def score(self) -> float:
        return 1.0 if self.passed else 0.0


def placeholders(template: str) -> frozenset[str]:
    """The names `template` refers to."""
    return frozenset(name for name in _PLACEHOLDER.findall(template) if name)


def render(template: str, values: Mapping[str, str], quote: Callable[[str], str]) -> str:
    """`template` with each `{name}` replaced by `quote(values[name])` (see the module doc)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return quote(values[match.group(1)])

    return _PLACEHOLDER.sub(replace, template)


def render_command(template: str, values: Mapping[str, str]) -> str:
    return render(template, values, shlex.quote)


def render_file(template: str, values: Mapping[str, str]) -> str:
    return render(template, values, str)


def template_problem(metric: MetricSpec, fields: Iterable[str]) -> str | None:
    """Why `metric`'s files or commands cannot render for a case with `fields`, else `None`."""
    known = {*fields, ANSWER, WORKSPACE}
    for name, template in metric.files.items():
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            return f"files: {name!r} must be a relative path inside the workspace"
        missing = placeholders(template) - known
        if missing:
            return f"files.{name}: uses {', '.join(sorted(missing))}, which the case does not have"
    commands = [rule.command for rule in metric.rules if rule.validator is None]
    if metric.skip_when is not None:
        commands.append(metric.skip_when.command)
    for command in commands:
        missing = placeholders(command) - known
        if missing:
            return (
                f"rules: {command!r} uses {', '.join(sorted(missing))}, which the case does not "
                "have"
            )
    return None


# Runs a rule's validator plugin in a workspace: (rule, values, workspace) -> how it ended.
Validate = Callable[[ValidationRule, Mapping[str, str], str], CommandOutcome]


def validation_flow(
    rules: Iterable[ValidationRule],
    skip_when: SkipWhen | None,
    values: Mapping[str, str],
    workspace: str,
    *,
    validate: Validate | None = None,
) -> Generator[SandboxCommand, CommandOutcome, ExecutionVerdict]:
    """Yield the commands to run in `workspace`, in order; return the verdict. A rule naming
    a validator plugin is run by `validate` in place (recorded as `validator <name>`)."""
    values = {**values, WORKSPACE: workspace}
    runs: list[StageRun] = []
    if skip_when is not None:
        command = render_command(skip_when.command, values)
        outcome = yield SandboxCommand(command, skip_when.timeout_s)
        runs.append(StageRun(0, command, outcome))
        if outcome.passed:
            return ExecutionVerdict(passed=False, skipped=True, runs=runs)
    by_stage: dict[int, list[ValidationRule]] = {}
    for rule in rules:
        by_stage.setdefault(rule.stage, []).append(rule)
    for stage in sorted(by_stage):
        failed = False
        for rule in by_stage[stage]:
            if rule.validator is not None:
                command = f"validator {rule.validator}"
                if validate is None:
                    outcome = CommandOutcome(exit_code=None, duration_s=0.0, error="not loaded")
                else:
                    outcome = validate(rule, values, workspace)
            else:
                command = render_command(rule.command, values)
                outcome = yield SandboxCommand(command, rule.timeout_s)
            runs.append(StageRun(stage, command, outcome))
            failed = failed or not outcome.passed
        if failed:
            return ExecutionVerdict(passed=False, failed_stage=stage, runs=runs)
    return ExecutionVerdict(passed=True, runs=runs)

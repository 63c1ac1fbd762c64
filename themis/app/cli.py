"""The `themis` command line: run experiments, report on runs, list a store's runs.

Every expected failure (bad config, unknown run, locked store) prints one `error:` line to
stderr and exits with status 2; an interrupt exits 130 and keeps every committed event.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from themis.app.api import Experiment, load_report, runs
from themis.app.progress import ProgressBar
from themis.app.render import report_json, report_table, run_json, runs_json, runs_table
from themis.core.errors import ThemisError
from themis.core.stages import Stage

app = typer.Typer(
    name="themis",
    help="Reproducible LLM evaluations: compile once, run concurrently, answer from the log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StoreOption = Annotated[
    Path, typer.Option("--store", help="The run store (a DuckDB file).", show_default=True)
]
T = TypeVar("T")


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


class UntilStage(StrEnum):
    GENERATE = "generate"
    PARSE = "parse"
    SCORE = "score"


def _stdout() -> Console:
    console = Console(soft_wrap=False)
    if not console.is_terminal:  # files and pipes get full rows, not a guessed 80 columns
        console = Console(soft_wrap=False, width=160)
    return console


def _stderr() -> Console:
    return Console(stderr=True)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ThemisError as error:
        _stderr().print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _stderr().print("interrupted: committed work is kept; run the same command again to resume")
        raise typer.Exit(130) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (.toml or .json).")],
    store: StoreOption = Path("themis.duckdb"),
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a config value: KEY=VALUE (dotted key, TOML value). Repeatable."
        ),
    ] = None,
    until_stage: Annotated[
        UntilStage, typer.Option("--until-stage", help="Stop after this stage.")
    ] = UntilStage.SCORE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run an experiment (or reuse / resume its stored run) and print its report."""
    with _errors():
        experiment = Experiment.from_file(config, overrides=set_ or [])
        stderr = _stderr()
        mode = experiment.runtime.progress
        show = not quiet and mode != "off" and (mode == "on" or stderr.is_terminal)
        bar = ProgressBar(stderr, f"run {experiment.run_id[:12]}") if show else None
        with bar or nullcontext():
            result = experiment.run(
                store, until_stage=Stage(until_stage.value), on_progress=bar.update if bar else None
            )
        if as_json:
            _print_json(run_json(result))
            return
        out = _stdout()
        if result.reused:
            out.print(f"run {result.run_id[:12]}: reused the stored run (0 model calls)")
        else:
            out.print(
                f"run {result.run_id[:12]}: executed {result.trials_executed} trials "
                f"({result.model_calls} model calls)"
            )
        out.print(report_table(result.report))


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    store: StoreOption = Path("themis.duckdb"),
    format_: Annotated[
        ReportFormat, typer.Option("--format", help="Output format.")
    ] = ReportFormat.TABLE,
) -> None:
    """Print the report of a stored run."""
    with _errors():
        result = _with_store(store, lambda location: load_report(run_id, location))
        if format_ is ReportFormat.JSON:
            _print_json(report_json(result))
        else:
            _stdout().print(report_table(result))


@app.command("runs")
def list_runs(
    store: StoreOption = Path("themis.duckdb"),
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the runs in a store, oldest first."""
    with _errors():
        summaries = _with_store(store, runs)
        if as_json:
            _print_json(runs_json(summaries))
        else:
            _stdout().print(runs_table(summaries))


def _with_store(store: Path, action: Callable[[Path], T]) -> T:
    if not store.exists():
        raise ThemisError(f"{store}: no such store (run an experiment first, or pass --store)")
    return action(store)


def main() -> None:
    app()

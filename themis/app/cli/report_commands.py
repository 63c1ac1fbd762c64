"""`themis report|runs`: the report of a stored run (as a table, or in a format or file), and
the list of a store's runs.

Every expected failure (unknown run, locked store, unusable format) prints one `error:` line to
stderr and exits with status 2.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from themis.app.cli import inspect_commands
from themis.app.cli.shared import StoreOption, errors, existing_store, print_json, stderr, stdout
from themis.core.errors import ConfigError, StoreLocked


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MD = "md"
    CSV = "csv"
    LATEX = "latex"
    HTML = "html"


def report(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    store: StoreOption = Path("themis.duckdb"),
    format_: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format", help="Output format (default: from --output's suffix, else table)."
        ),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            metavar="DIMS",
            help="Group rows by dataset, model, prompt or case fields (comma-separated or "
            "repeated); case fields alone are added to dataset,model,prompt.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="RUN_B",
            help="Add the paired comparison of RUN_B against this run (html, md, latex, json).",
        ),
    ] = None,
) -> None:
    """Print (or write) the report of a stored run: every mean with its 95% CI and n."""
    from themis.app.api.reporter import SUFFIXES, Reporter

    with errors():
        existing_store(store)
        chosen = format_.value if format_ is not None else None
        if chosen is None and output is not None:
            chosen = SUFFIXES.get(output.suffix.lower())
        if compare is not None and chosen in (None, "table", "csv"):
            raise ConfigError(
                f"--compare: a comparison is rendered in html, md, latex or json, not "
                f"{chosen or 'table'}; `themis compare` prints it as a table"
            )
        reporter = Reporter(run_id, store, by=by or (), compare_to=compare)
        if output is not None:
            if output.is_dir():
                raise ConfigError(f"--output: {output} is a directory")
            written = reporter.save(output, chosen or "table")
            stderr().print(f"wrote {written}", markup=False, highlight=False, soft_wrap=True)
        elif chosen in (None, "table"):
            from themis.app.render.reports import document_render

            stdout().print(document_render(reporter.document))
        else:
            sys.stdout.write(reporter.render(chosen))


def list_runs(
    store: StoreOption = Path("themis.duckdb"),
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the runs in a store, oldest first, then the runs submitted to it that no worker has
    taken yet (status `queued`)."""
    from themis.app.api.views import run_statuses, runs
    from themis.app.render.report_json import runs_json

    with errors():
        try:
            summaries = runs(inspect_commands.store_or_queue(store))
        except StoreLocked as locked:  # a run in progress holds it: list what that run publishes
            inspect_commands.print_live_runs(locked, as_json=as_json)
            return
        statuses = run_statuses(store)
        if as_json:
            print_json(runs_json(summaries, statuses))
        else:
            from themis.app.render.reports import runs_table

            stdout().print(runs_table(summaries, statuses))

"""`themis compare` and `themis export`: a stored run's results against another's, and as data.

Both only read the store (read-only, like `report`); a bad option is one `error:` line, exit 2.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from themis.app.cli.shared import StoreOption, errors, print_json, stdout, with_store
from themis.core.errors import ConfigError


class CompareFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MD = "md"
    LATEX = "latex"
    HTML = "html"


def _names(value: str | None, option: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = tuple(name.strip() for name in value.split(","))
    if len(names) != 2 or not all(names):
        raise ConfigError(f"{option}: give two names separated by a comma, got {value!r}")
    return names


def compare(
    run_a: Annotated[str, typer.Argument(help="Run A (an id or a unique prefix).")],
    run_b: Annotated[
        str | None, typer.Argument(help="Run B; leave out to compare within run A.")
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Within run A: model a against model b (a,b).")
    ] = None,
    prompts: Annotated[
        str | None,
        typer.Option("--prompts", help="Within run A: prompt x against prompt y (x,y)."),
    ] = None,
    store: StoreOption = Path("themis.duckdb"),
    format_: Annotated[
        CompareFormat, typer.Option("--format", help="Output format.")
    ] = CompareFormat.TABLE,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the bootstrap and the permutation test.")
    ] = 0,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Compare B against A case by case: paired tests, case-clustered intervals, Holm."""
    from themis.app.api.comparing import compare as compare_runs
    from themis.app.render import comparisons
    from themis.core.comparison import Resampling

    with errors():
        if format_ is CompareFormat.HTML:
            _html(run_a, run_b, store, output)
            return
        names = _names(models, "--models"), _names(prompts, "--prompts")
        result = with_store(
            store,
            lambda location: compare_runs(
                run_a,
                run_b,
                models=names[0],
                prompts=names[1],
                store=location,
                resampling=Resampling(seed=seed),
            ),
        )
        if format_ is CompareFormat.TABLE and output is None:
            stdout().print(comparisons.comparison_table(result))
            return
        if format_ is CompareFormat.JSON and output is None:
            print_json(comparisons.comparison_json(result))
            return
        text = {
            CompareFormat.MD: comparisons.comparison_markdown,
            CompareFormat.LATEX: comparisons.comparison_latex,
            CompareFormat.JSON: comparisons.comparison_text_json,
            CompareFormat.TABLE: comparisons.comparison_text_table,
        }[format_](result)
        if output is None:
            stdout().out(text, end="", highlight=False)
        else:
            output.write_text(text, encoding="utf-8")


def _html(run_a: str, run_b: str | None, store: Path, output: Path | None) -> None:
    """The HTML report of run A with the paired comparison of run B (two runs only)."""
    from themis.app.api.reporter import Reporter

    if run_b is None:
        raise ConfigError("--format html: give two runs (the report of A with B compared)")
    text = with_store(store, lambda location: Reporter(run_a, location, compare_to=run_b))
    page = text.render("html")
    if output is None:
        stdout().out(page, end="", highlight=False)
    else:
        output.write_text(page, encoding="utf-8")


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    JSONL = "jsonl"


def export(
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    store: StoreOption = Path("themis.duckdb"),
    format_: Annotated[
        ExportFormat, typer.Option("--format", help="File format.")
    ] = ExportFormat.PARQUET,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="Directory to write to (default: themis-export-<run id prefix>)."
        ),
    ] = None,
) -> None:
    """Write a run's trials, generations, scores, failures and retries as files."""
    from themis.app.api.log_data import export_run

    with errors():
        written = with_store(
            store, lambda location: export_run(run_id, format_.value, output, location)
        )
        for path in written:
            stdout().print(str(path), markup=False, highlight=False)

"""`themis export-bundle` / `import-bundle`, `themis batch export|import`, `themis
import-answers` and `import-scores`: moving a run's results between stores, through a provider's
batch API, or in from anywhere else. Every import goes through the run's event log and is
idempotent.

Errors follow the CLI's contract (`themis.app.cli.shared.errors`): one `error:` line, status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from themis.app.cli.shared import DEFAULT_STORE, SetOption, StoreOption, errors, stdout

if TYPE_CHECKING:
    from themis.app.api.experiment import Experiment

SourceArgument = Annotated[
    str, typer.Argument(help="Experiment config (.toml or .json), or a stored run's id (prefix).")
]
FormatOption = Annotated[
    str,
    typer.Option("--format", help="The provider's batch format: openai (Batch API) or anthropic."),
]


def _say(text: str) -> None:
    stdout().print(text, markup=False, highlight=False, soft_wrap=True)


def _experiment(source: str, store: Path, overrides: list[str]) -> Experiment:
    """A config file's experiment, or a stored run's (`--set` then changes runtime only)."""
    from themis.app.api.experiment import Experiment

    if Path(source).suffix.lower() in (".toml", ".json"):
        return Experiment.from_file(source, overrides=overrides)
    return Experiment.from_store(source, store, overrides=overrides)


def export_bundle_command(
    run_id: Annotated[str, typer.Argument(help="The stored run (id or unique prefix).")],
    kind: Annotated[str, typer.Argument(help="generation, reduction, parse, score or evaluation.")],
    out: Annotated[
        Path,
        typer.Argument(
            help="Where to write it: a new directory, or a new .jsonl or .parquet file."
        ),
    ],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Export a run's results of one stage as a bundle (a manifest and JSONL or Parquet rows)."""
    from themis.app.api.bundles import export_stage_bundle

    with errors():
        manifest = export_stage_bundle(run_id, kind, out, store)
        _say(
            f"exported {manifest.rows} {manifest.kind} rows of run {manifest.run_id[:12]} to {out}"
        )


def import_bundle_command(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory, .jsonl or .parquet file.")],
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="The run you mean it for: another run's bundle is refused."),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Import a bundle into its run (created from the bundle if the store lacks it)."""
    from themis.app.api.bundles import import_stage_bundle

    with errors():
        outcome = import_stage_bundle(bundle, store, into=run_id)
        _say(
            f"imported {outcome.imported} rows into run {outcome.run_id[:12]} "
            f"({outcome.already_held} already held)"
        )


def batch_export_command(
    source: SourceArgument,
    out: Annotated[Path, typer.Argument(help="The batch input file to write (a new file).")],
    batch_format: FormatOption = "openai",
    models: Annotated[
        list[str] | None,
        typer.Option("--model", help="Only this model's requests (repeatable)."),
    ] = None,
    store: StoreOption = DEFAULT_STORE,
    set_: SetOption = None,
) -> None:
    """Write the run's pending generation requests as a provider batch input file."""
    from themis.app.api.bundles import export_batch

    with errors():
        experiment = _experiment(source, store, set_ or [])
        written = export_batch(experiment, out, batch_format, store, models=models or ())
        _say(
            f"wrote {written} pending requests of run {experiment.run_id[:12]} to {out} "
            f"({batch_format} batch format)"
        )


def batch_import_command(
    source: SourceArgument,
    output: Annotated[Path, typer.Argument(help="The provider's batch output (results) file.")],
    batch_format: FormatOption = "openai",
    store: StoreOption = DEFAULT_STORE,
    set_: SetOption = None,
) -> None:
    """Record a provider's batch output as the run's generations (no model is called)."""
    from themis.app.api.bundles import import_batch

    with errors():
        experiment = _experiment(source, store, set_ or [])
        result = import_batch(experiment, output, batch_format, store)
        _say(
            f"imported {result.imported} answers into run {experiment.run_id[:12]} "
            f"({result.outcome.already_held} already held)"
        )
        if result.failures:
            first = next(iter(result.failures.values()))
            _say(
                f"{len(result.failures)} requests failed at the provider and stay pending "
                f"(first: {first}); export them again or run the experiment"
            )


def _candidates(path: Path) -> list[dict[str, Any]]:
    from themis.core.errors import ConfigError

    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: line {number}: invalid JSON ({error.msg})") from None
    return records


def import_answers_command(
    source: SourceArgument,
    answers: Annotated[
        Path,
        typer.Argument(
            help="JSON lines, one answer each: case_id, text, and model, prompt, dataset, "
            "sample where the run has several."
        ),
    ],
    store: StoreOption = DEFAULT_STORE,
    set_: SetOption = None,
) -> None:
    """Record answers produced elsewhere (another tool, a human) as the run's generations."""
    from themis.app.api.bundles import import_candidates

    with errors():
        experiment = _experiment(source, store, set_ or [])
        outcome = import_candidates(experiment, _candidates(answers), store)
        _say(
            f"imported {outcome.imported} answers into run {outcome.run_id[:12]} "
            f"({outcome.already_held} already held)"
        )


def import_scores_command(
    source: SourceArgument,
    scores: Annotated[
        Path,
        typer.Argument(
            help="JSON lines, one evaluated trial each: case_id, scores (every metric of the "
            "run, in [0, 1]), optionally answer, and model, prompt, dataset, sample where the "
            "run has several."
        ),
    ],
    store: StoreOption = DEFAULT_STORE,
    set_: SetOption = None,
) -> None:
    """Record scores made elsewhere for the run's stored generations (as parses and scores)."""
    from themis.app.api.bundles import import_evaluations

    with errors():
        experiment = _experiment(source, store, set_ or [])
        outcome = import_evaluations(experiment, _candidates(scores), store)
        _say(
            f"imported {outcome.imported} parse and score rows into run {outcome.run_id[:12]} "
            f"({outcome.already_held} already held)"
        )

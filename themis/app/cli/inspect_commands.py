"""`themis inspect snapshot|state|evaluation|queue` and `themis quickcheck`.

Each reads the store; while another process runs against it (the store is locked), the views
that process publishes answer instead and say so (`live from PID n; store is in use`).
`inspect evaluation` needs the full log and then fails with one `error:` line naming the PID.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from themis.app.cli.shared import DEFAULT_STORE, errors, existing_store, print_json, stdout

# The engine and rich are imported inside each command, so `--help` never loads them.
if TYPE_CHECKING:
    from themis.core.errors import StoreLocked
    from themis.core.live_progress import LiveRecord

RunIdArgument = Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")]
StoreOption = Annotated[Path, typer.Option("--store", help="The run store (a DuckDB file).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print as JSON.")]


def inspect_snapshot(
    run_id: RunIdArgument, store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False
) -> None:
    """Identity, runtime settings, provenance and runtime changes of a run."""
    from themis.app.api.views import get_run_snapshot
    from themis.app.render.inspect_views import snapshot_json, snapshot_render

    with errors():
        view = get_run_snapshot(run_id, store_or_queue(store))
        if as_json:
            print_json(snapshot_json(view))
        else:
            stdout().print(snapshot_render(view))


def inspect_state(
    run_id: RunIdArgument, store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False
) -> None:
    """Per-stage planned / done / failed / pending counts, failure reasons and status."""
    from themis.app.api.views import get_execution_state
    from themis.app.render.inspect_views import state_json, state_render

    with errors():
        view = get_execution_state(run_id, store_or_queue(store))
        if as_json:
            print_json(state_json(view))
        else:
            stdout().print(state_render(view))
            if any(hold.by is not None for hold in view.holds):
                stdout().print(f"to clear shared pauses: themis providers clear --store {store}")


def inspect_evaluation(
    run_id: RunIdArgument,
    case: Annotated[str, typer.Option("--case", help="The case id to show.")],
    store: StoreOption = DEFAULT_STORE,
    as_json: JsonOption = False,
) -> None:
    """Every trial of one case: messages, response, parse, scores and failures."""
    from themis.app.api.views import get_evaluation_execution
    from themis.app.render.evaluation import evaluation_json, evaluation_render

    with errors():
        view = get_evaluation_execution(run_id, case, existing_store(store))
        if as_json:
            print_json(evaluation_json(view))
        else:
            stdout().print(evaluation_render(view))


def inspect_queue(store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """The runs submitted to the store (`themis submit`), in order: queued, running,
    interrupted (a worker stopped mid-run; the next resumes it) or done, and how each ended."""
    from themis.app.render.queue_views import queue_json, queue_render
    from themis.app.wiring import process_alive, run_queue_of

    with errors():
        entries = run_queue_of(store).entries()
        if as_json:
            print_json(queue_json(entries, process_alive))
        else:
            stdout().print(queue_render(entries, process_alive, str(store)))


def quickcheck_command(store: StoreOption = DEFAULT_STORE, as_json: JsonOption = False) -> None:
    """One line per run: status, completed stage and trial counts."""
    from themis.app.api.views import quickcheck
    from themis.app.render.inspect_views import quickcheck_json, quickcheck_render

    with errors():
        rows = quickcheck(store_or_queue(store))
        if as_json:
            print_json(quickcheck_json(rows))
        else:
            stdout().print(quickcheck_render(rows))


def store_or_queue(store: Path) -> Path:
    """`store`, which must exist, or have runs submitted to it (its queue, ADR 0031)."""
    from themis.app.wiring import run_queue_of

    if not store.exists() and not run_queue_of(store).entries():
        existing_store(store)  # neither a store nor runs submitted to it: say so
    return store


def print_live_runs(locked: StoreLocked, *, as_json: bool) -> None:
    """`themis runs` while the store is locked: the runs its holder publishes, marked live."""
    from rich.table import Table

    from themis.app.api.views import published_runs
    from themis.app.render.inspect_views import live_note, when

    records = published_runs(locked)
    if as_json:
        live = {"pid": records[0].pid, "updated_at": when(records[0].updated_at)}
        print_json({"live": live, "runs": [_live_run_json(record) for record in records]})
        return
    table = Table(title=f"runs ({live_note(records[0].source)})", title_justify="left")
    for column in ("run_id", "name", "created", "status"):
        table.add_column(column)
    for record in records:
        table.add_row(
            record.run_id[:16], record.name, when(record.snapshot.created_at), record.status
        )
    stdout().print(table)


def _live_run_json(record: LiveRecord) -> dict[str, Any]:
    from themis.app.render.inspect_views import when

    return {
        "run_id": record.run_id,
        "name": record.name,
        "created_at": when(record.snapshot.created_at),
        "events": None,
        "status": record.status,
        "completed_through_stage": None,
    }

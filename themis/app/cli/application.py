"""The `themis` typer application, assembled in this one place from the command modules.

Commands are plain functions in the `*_commands` modules (`run_commands`, `report_commands`, ...);
registering them here (in the order `themis --help` lists them) keeps those modules free of
import-time side effects and of imports back into this one.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from themis.app.cli import (
    bundle_commands,
    data_commands,
    inspect_commands,
    lifecycle_commands,
    provider_commands,
    queue_commands,
    report_commands,
    run_commands,
    view_command,
)
from themis.app.cli.coercion import plain_coercion
from themis.app.cli.endings import ExitStatus
from themis.app.cli.help_format import load_rich_utils
from themis.app.cli.shared import quiet_stdout


def _flags_without_type(params: list[Any]) -> list[Any]:
    """Flags take no value, so `--help` shows none for them (typer would print `<bool>`).

    A flag left unset is `False`, not `None`: typer coerces a `None` through pydantic, whose
    import alone costs `themis --help` about a third of its start-up (issue 12)."""
    for param in params:
        if getattr(param, "is_flag", False):
            if param.metavar is None:
                param.metavar = ""
            if param.default is None:
                param.default = False
    return params


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return plain_coercion(_flags_without_type(super().get_params(ctx)))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        load_rich_utils()
        super().format_help(ctx, formatter)


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return plain_coercion(_flags_without_type(super().get_params(ctx)))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        load_rich_utils()
        super().format_help(ctx, formatter)


def _group(name: str, help_text: str) -> typer.Typer:
    """A command group: `themis` itself, or a noun whose subcommands act on one thing."""
    return typer.Typer(
        cls=_Group,
        name=name,
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


app = _group(
    "themis", "Reproducible LLM evaluations: compile once, run concurrently, answer from the log."
)
inspect_app = _group(
    "inspect",
    "Inspect a run: its snapshot, its execution state, or one case's trials; or the "
    "store's queue of submitted runs.",
)
batch_app = _group(
    "batch",
    "Batch prices: export pending requests for a provider's batch API, import its output.",
)
providers_app = _group(
    "providers",
    "Provider pauses and breaker windows shared by runs on a store: list or clear them.",
)
queue_app = _group(
    "queue",
    "The store's queue of submitted runs: prune the done ones (`inspect queue` lists it).",
)

app.command(cls=_Command)(run_commands.run)
app.command(cls=_Command)(run_commands.resume)
app.command(cls=_Command)(run_commands.replay)
app.command(cls=_Command)(report_commands.report)
app.command("runs", cls=_Command)(report_commands.list_runs)
app.command("submit", cls=_Command)(queue_commands.submit)
app.command("worker", cls=_Command)(queue_commands.worker)
app.add_typer(queue_app, name="queue")
queue_app.command("prune", cls=_Command)(queue_commands.prune)
app.add_typer(inspect_app, name="inspect")
inspect_app.command("snapshot", cls=_Command)(inspect_commands.inspect_snapshot)
inspect_app.command("state", cls=_Command)(inspect_commands.inspect_state)
inspect_app.command("evaluation", cls=_Command)(inspect_commands.inspect_evaluation)
inspect_app.command("queue", cls=_Command)(inspect_commands.inspect_queue)
app.command("quickcheck", cls=_Command)(inspect_commands.quickcheck_command)
app.add_typer(providers_app, name="providers")
providers_app.command("list", cls=_Command)(provider_commands.providers_list)
providers_app.command("clear", cls=_Command)(provider_commands.providers_clear)
app.command("plan", cls=_Command)(lifecycle_commands.plan_command)
app.command("estimate", cls=_Command)(lifecycle_commands.estimate_command)
app.command("diff", cls=_Command)(lifecycle_commands.diff_command)
app.command("export-bundle", cls=_Command)(bundle_commands.export_bundle_command)
app.command("import-bundle", cls=_Command)(bundle_commands.import_bundle_command)
app.command("import-answers", cls=_Command)(bundle_commands.import_answers_command)
app.command("import-scores", cls=_Command)(bundle_commands.import_scores_command)
app.add_typer(batch_app, name="batch")
batch_app.command("export", cls=_Command)(bundle_commands.batch_export_command)
batch_app.command("import", cls=_Command)(bundle_commands.batch_import_command)
app.command("compare", cls=_Command)(data_commands.compare)
app.command("export", cls=_Command)(data_commands.export)
app.command("view", cls=_Command)(view_command.view)


def main() -> None:
    """The `themis` console script: `app`, and a quiet status 141 when stdout was closed early
    (what is still buffered for it is dropped, not reported as an error at exit).

    Once the command is done, every object is frozen out of the garbage collector: the
    interpreter's shutdown would otherwise walk them all, about 0.1 s of CPU per command (issue
    12), to free memory the process returns as it exits anyway. Stores, files and threads are
    closed by the command itself, and `atexit` handlers still run."""
    try:
        try:
            app()
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        quiet_stdout()
        sys.exit(ExitStatus.BROKEN_PIPE)
    finally:
        gc.freeze()

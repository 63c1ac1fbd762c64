"""The `themis` typer application, assembled in this one place from the command modules.

Commands are plain functions in `run_commands`, `inspect_commands` and `lifecycle_commands`;
registering them here (in the order `themis --help` lists them) keeps those modules free of
import-time side effects and of imports back into this one.
"""

from __future__ import annotations

import typer

from themis.app.cli import inspect_commands, lifecycle_commands, provider_commands, run_commands

app = typer.Typer(
    name="themis",
    help="Reproducible LLM evaluations: compile once, run concurrently, answer from the log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
inspect_app = typer.Typer(
    name="inspect",
    help="Inspect a run: its snapshot, its execution state, or one case's trials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
providers_app = typer.Typer(
    name="providers",
    help="Provider pauses and breaker windows shared by runs on a store: list or clear them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command()(run_commands.run)
app.command()(run_commands.resume)
app.command()(run_commands.replay)
app.command()(run_commands.report)
app.command("runs")(run_commands.list_runs)
app.add_typer(inspect_app, name="inspect")
inspect_app.command("snapshot")(inspect_commands.inspect_snapshot)
inspect_app.command("state")(inspect_commands.inspect_state)
inspect_app.command("evaluation")(inspect_commands.inspect_evaluation)
app.command("quickcheck")(inspect_commands.quickcheck_command)
app.add_typer(providers_app, name="providers")
providers_app.command("list")(provider_commands.providers_list)
providers_app.command("clear")(provider_commands.providers_clear)
app.command("plan")(lifecycle_commands.plan_command)
app.command("estimate")(lifecycle_commands.estimate_command)
app.command("diff")(lifecycle_commands.diff_command)


def main() -> None:
    app()

"""`themis plan`, `themis estimate` and `themis diff`: look at a run, what it would take, or at two
configs, before running anything.

Errors follow the CLI's contract (`themis.app.cli.shared.errors`): one `error:` line on stderr,
exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from themis.app.cli.shared import (
    DEFAULT_STORE,
    SetOption,
    errors,
    print_json,
    print_warnings,
    stdout,
)


def plan_command(
    config: Annotated[Path, typer.Argument(help="Experiment config (.toml or .json).")],
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help=(
                f"The run store (default: {DEFAULT_STORE}, used only if it exists). Saves the "
                "run's snapshot there, creating the store if needed."
            ),
        ),
    ] = None,
    set_: SetOption = None,
    save: Annotated[
        bool,
        typer.Option("--save/--no-save", help="Save the compiled run (no events) in the store."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Compile a config and print its run manifest: run_id, trials per stage and per group."""
    from themis.app.api.experiment import Experiment
    from themis.app.api.lifecycle import plan_run
    from themis.app.render.plan_and_diff import (
        plan_header,
        plan_json,
        plan_stage_line,
        plan_store_line,
        plan_table,
    )

    with errors():
        experiment = Experiment.from_file(config, overrides=set_ or [])
        print_warnings(experiment.spec)
        location = store if store is not None else DEFAULT_STORE
        existed = location.exists()
        # Only a store the user named may be created; the default one is used when it exists.
        use = existed or (store is not None and save)
        result = plan_run(experiment, location if use else None, save=save)
        if as_json:
            print_json(plan_json(result, str(location), store_existed=existed))
            return
        out = stdout()
        manifest = result.manifest
        for line in plan_header(manifest):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        out.print(plan_table(manifest))
        for line in (
            plan_stage_line(manifest),
            plan_store_line(result, str(location), store_existed=existed),
        ):
            out.print(line, markup=False, highlight=False, soft_wrap=True)


def estimate_command(
    config: Annotated[Path, typer.Argument(help="Experiment config (.toml or .json).")],
    set_: SetOption = None,
    retry_allowance: Annotated[
        float,
        typer.Option(
            "--retry-allowance", help="Share of calls assumed to be repeated (0.1: 10% more)."
        ),
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Estimate a run: trials, tokens and, with prices or rate limits, cost and time.

    Nothing is called and no store is opened: the figures come from the plan and the runtime
    settings (model_prices, provider_rate_limits, concurrency, assumed_output_tokens,
    assumed_latency_s).
    """
    from themis.app.api.experiment import Experiment
    from themis.app.render.estimate import (
        estimate_header,
        estimate_json,
        estimate_lines,
        estimate_table,
    )

    with errors():
        experiment = Experiment.from_file(config, overrides=set_ or [])
        result = experiment.estimate(retry_allowance=retry_allowance)
        if as_json:
            print_json(estimate_json(result, experiment.spec.name))
            return
        out = stdout()
        for line in estimate_header(result, experiment.spec.name):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        out.print(estimate_table(result))
        for line in estimate_lines(result):
            out.print(line, markup=False, highlight=False, soft_wrap=True)


def diff_command(
    config_a: Annotated[Path, typer.Argument(help="The first config (A).")],
    config_b: Annotated[Path, typer.Argument(help="The second config (B).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Override a value of B: KEY=VALUE. Repeatable."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON.")] = False,
) -> None:
    """Show what differs between two configs (identity, runtime, provenance) and if runs differ."""
    from themis.app.api.lifecycle import diff_configs
    from themis.app.render.plan_and_diff import diff_json, diff_lines

    with errors():
        comparison = diff_configs(config_a, config_b, overrides_b=set_ or [])
        if as_json:
            print_json(diff_json(comparison))
            return
        out = stdout()
        for line in diff_lines(comparison, set_ or []):
            out.print(line, markup=False, highlight=False, soft_wrap=True)

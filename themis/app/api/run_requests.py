"""What an `Experiment` is asked to execute, and executing it: `checked_request` turns a call of
`run`, `resume` or `submit_run` into a `RunRequest`, every name and setting checked before a
store is opened; `execute_request` runs one on the ports the wiring builds for an open store.

Apart from `experiment`, which holds what an experiment is (its construction, what it would do)
and the calls a user makes; these are the steps those calls share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from themis.app.api.stored_runs import Adapters, executed_stage, keep_facts, require_plugins
from themis.app.config.loading import check_config
from themis.app.usecases.provenance import config_provenance
from themis.app.usecases.runs import Driving, RunRequest, RunResult, run_experiment
from themis.app.wiring import check_models, execution_ports, plugin_models
from themis.core.checks import RUNTIME_CHECKS
from themis.core.errors import ConfigError
from themis.core.runtime import RuntimeConfig
from themis.core.stages import Stage
from themis.ports.model import ModelPort
from themis.ports.store import StorePort

if TYPE_CHECKING:
    from themis.app.api.experiment import Experiment

__all__ = ["checked_request", "execute_request"]


def checked_request(
    experiment: Experiment,
    runtime: RuntimeConfig,
    until_stage: Stage | str | None,
    models: Mapping[str, ModelPort] | None,
    runtime_changes: Mapping[str, Any],
) -> RunRequest:
    """What `run`, `resume` and `submit_run` execute: `runtime` with `runtime_changes`, checked
    (with the caller's `models`) before a store is opened."""
    try:
        effective = attrs.evolve(runtime, **runtime_changes)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"run: {error}") from None
    spec, source = experiment.spec, experiment.source
    stage = executed_stage(until_stage, spec)
    if effective != experiment.runtime:  # the experiment's own runtime was checked when built
        check_config(spec, effective, str(source or "<spec>"), RUNTIME_CHECKS)
    try:
        check_models(spec, models or {}, effective)
    except ConfigError as error:  # name the config file, as every other config error does
        raise ConfigError(f"{source}: {error}" if source else str(error)) from None
    return RunRequest(
        experiment.compiled,
        effective,
        stage,
        provenance=config_provenance(source) if source else {},
    )


def execute_request(
    experiment: Experiment, store: StorePort, request: RunRequest, adapters: Adapters
) -> RunResult:
    """Execute `request` of `experiment` on `store` with the caller's `adapters`, and keep the
    facts a later command reuses (`keep_facts`)."""
    clock = adapters.get("clock")
    # On the system clock, this experiment's executions share providers' limits and breakers.
    registry = experiment.provider_registry if clock is None else None
    require_plugins(experiment.compiled)
    models = {**plugin_models(experiment.compiled), **(adapters.get("models") or {})}
    telemetry = adapters.get("telemetry") or experiment.telemetry
    driving = Driving(adapters.get("on_progress"), telemetry=telemetry)
    ports = execution_ports(store, experiment.spec, request.runtime, models, clock, registry)
    with ports as opened:
        result = run_experiment(request, opened, driving)
    keep_facts(store, request, result, own_models=bool(adapters.get("models")))
    return result

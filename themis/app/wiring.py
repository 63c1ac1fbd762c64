"""The composition root, the one place that names concrete adapters: which store, which models,
which clock, where provider state and live progress are shared. It builds them into `Ports` for
the use cases; nothing below it imports it.

Providers: `fake` (the scripted model), `openai` (OpenAI-compatible HTTP) and `anthropic`
(Messages API), plus any other name that `[runtime.endpoints.NAME]` gives an endpoint, served by
the adapter of the API its models name (`api = "chat" | "completions" | "messages"`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from themis.adapters.live_progress import (
    FileLiveProgress,
    ViewerNotice,
    pid_alive,
    progress_directory,
)
from themis.adapters.provider_state import FileProviderState
from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_queries import DuckDBConnections
from themis.adapters.stores.duckdb_tables import LogTable as LogTable  # noqa: PLC0414 (re-exported for the API)
from themis.adapters.stores.duckdb_tables import export_log, read_log
from themis.adapters.stores.duckdb_views import VIEW_NAMES
from themis.core.endpoint import Endpoint
from themis.core.errors import ConfigError
from themis.core.judging import all_models
from themis.core.planner import CompiledRun, ModelRequest
from themis.core.plugins import PluginKind, is_plugin_name
from themis.core.project import TelemetrySpec
from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec, ModelSpec
from themis.ports.clock import ClockPort
from themis.ports.live_progress import LiveProgressPort
from themis.ports.model import ModelPort
from themis.ports.provider_state import ProviderStatePort
from themis.ports.sandbox import SandboxPort
from themis.ports.store import StorePort

# The execution engine (trio) is imported where an execution is wired; the adapters of the
# queue, the sandbox, the log browser and bundles where they are built, and the in-memory store,
# the scripted, plugin and Anthropic models where a run uses them, so a plain run loads none of
# them (issue 12, ADR 0074: each import builds attrs classes before the run's first call).
if TYPE_CHECKING:
    from themis.adapters.batch_files import BatchOutput
    from themis.adapters.models.http import HttpModel
    from themis.adapters.models.scripted import ScriptedModel
    from themis.adapters.stores.duckdb_browse import LogBrowser
    from themis.app.execution.ports import Ports
    from themis.app.execution.provider_registry import ProviderRegistry
    from themis.app.execution.telemetry import Observer
    from themis.core.bundles import BundleManifest, StageBundle
    from themis.ports.run_queue import RunQueuePort

StoreLike = str | Path | StorePort
DEFAULT_STORE = "themis.duckdb"
PROVIDERS = ("fake", "openai", "anthropic")
# Built-in HTTP providers: their own API and the variable their key is read from by default.
HTTP_PROVIDERS: Mapping[str, tuple[str, str]] = {
    "openai": ("chat", "${OPENAI_API_KEY}"),
    "anthropic": ("messages", "${ANTHROPIC_API_KEY}"),
}
# Body fields Themis fills from the spec; a model's `options` may not replace them.
RESERVED_BODY_FIELDS = frozenset(
    {
        "model", "messages", "prompt", "system", "temperature", "top_p", "max_tokens", "stop",
        "stop_sequences", "seed", "n", "logprobs", "top_logprobs", "stream",
    }
)  # fmt: skip
# Where the fake provider journals its calls (one JSON line per call), for tests that count them.
FAKE_JOURNAL_ENV = "THEMIS_FAKE_JOURNAL"


def open_store(
    location: StoreLike | None = None, *, read_only: bool = False, migrate: bool = True
) -> StorePort:
    """A store from a path (`*.duckdb` file, `:memory:`), or the given store as it is.

    `read_only`: for reading an existing store only (report, inspect, runs). Nothing is written,
    so a store on read-only media can be read and a missing file is an error; another process
    holding the store fails at once (`StoreLocked`: readers answer from its live progress),
    whereas a writer waits a moment for it. `migrate=False`: a writer that writes nothing
    until its caller has checked its input (`DuckDBStore`; then `finish_opening`).
    """
    if location is None:
        location = DEFAULT_STORE
    if isinstance(location, str | Path):
        if str(location) == "memory":
            from themis.adapters.stores.memory import MemoryStore

            return MemoryStore()
        if read_only:
            return DuckDBStore(location, read_only=True, lock_wait=0.0)
        return DuckDBStore(location, migrate=migrate)
    return location


@contextmanager
def opened_store(
    location: StoreLike | None, *, read_only: bool = False, migrate: bool = True
) -> Iterator[StorePort]:
    """`open_store`, closing the store afterwards only if it was opened here."""
    store = open_store(location, read_only=read_only, migrate=migrate)
    try:
        yield store
    finally:
        if store is not location:
            store.close()


def store_and_reader(path: str | Path) -> tuple[StorePort, StorePort]:
    """The DuckDB store file at `path` opened read-write (created if missing), and a reader of
    it for the process's other threads (`DuckDBStore.reader`: the live viewer's)."""
    store = DuckDBStore(path)
    try:
        return store, store.reader()
    except BaseException:
        store.close()
        raise


def finish_opening(store: StorePort) -> None:
    """The writes a store opened with `migrate=False` deferred (`DuckDBStore.finish_opening`;
    nothing for other stores)."""
    if isinstance(store, DuckDBStore):
        store.finish_opening()


def reader_of(store: StorePort) -> tuple[str, StorePort]:
    """The file of the open DuckDB store `store` and a reader of it for other threads;
    `ConfigError` for any other store."""
    path = _store_file(store)
    if path is None or not isinstance(store, DuckDBStore):
        raise ConfigError("the live viewer reads a DuckDB store file; this store is not one")
    return str(path), store.reader()


def query_connections(
    location: str, held: Callable[[], StorePort | None], *, running: Callable[[], bool]
) -> DuckDBConnections:
    """Connections for users' own SQL on the store at `location` (`Orchestrator.db_manager`):
    through the store `held()` returns while this process holds it, else read-only from the
    file; `ConfigError` unless it is a DuckDB store."""
    if location == "memory":
        raise ConfigError(
            "db_manager: the store is not a DuckDB database; use a .duckdb file or ':memory:' "
            "as storage.path"
        )

    def holder() -> DuckDBStore | None:
        store = held()
        return store if isinstance(store, DuckDBStore) else None

    return DuckDBConnections(location, holder, running)


def read_stage_bundle(path: Path) -> StageBundle:
    """The stage bundle at `path`, checked (`themis.adapters.bundle_files`)."""
    from themis.adapters.bundle_files import read_bundle

    return read_bundle(path)


def write_stage_bundle(path: Path, bundle: StageBundle) -> BundleManifest:
    """Write `bundle` at `path` (a directory, or one file ending in `.jsonl` or `.parquet`)."""
    from themis.adapters.bundle_files import write_bundle

    return write_bundle(path, bundle)


def write_batch_file(path: Path, requests: Sequence[ModelRequest], batch_format: str) -> int:
    """Write a provider batch input file (`themis.adapters.batch_files`)."""
    # Imported here: the batch formats reuse the HTTP adapters' bodies, which load httpx.
    from themis.adapters.batch_files import write_batch_requests

    return write_batch_requests(path, requests, batch_format)


def read_batch_file(path: Path, batch_format: str, apis: Mapping[str, str]) -> BatchOutput:
    """The answers in a provider's batch output file."""
    from themis.adapters.batch_files import read_batch_output

    return read_batch_output(path, batch_format, apis)


# The views over the event log a store file has (`docs/reference/store.md`).
LOG_VIEWS: tuple[str, ...] = VIEW_NAMES


def log_file(location: StoreLike) -> str:
    """The DuckDB file whose log views the data API reads: a path, not an open store (the
    tables are copied out of the file by a connection of their own)."""
    if not isinstance(location, str | Path) or str(location) in ("memory", ":memory:"):
        raise ConfigError(
            "the log's tables are read from a DuckDB store file: pass its path as store="
        )
    return str(location)


def log_browser(location: StoreLike) -> LogBrowser:
    """Paginated read-only queries on the store file's log (the viewer's trials and failures),
    or on an open DuckDB store (a viewer in the process that holds it)."""
    from themis.adapters.stores.duckdb_browse import LogBrowser

    if isinstance(location, DuckDBStore):
        return LogBrowser(location)
    return LogBrowser(log_file(location))


def read_log_tables(location: StoreLike, run_id: str, names: Sequence[str]) -> dict[str, LogTable]:
    """The run's rows of the log views `names` as in-memory `LogTable`s (DuckDB relations)."""
    return read_log(log_file(location), run_id, names)


def export_log_tables(
    location: StoreLike, run_id: str, file_format: str, directory: Path
) -> list[Path]:
    """Write the run's log views to `directory` as Parquet, CSV or JSONL files."""
    return export_log(log_file(location), run_id, file_format, directory)


def telemetry_sinks(telemetry: TelemetrySpec) -> list[Observer]:
    """The observers `telemetry` names: a JSON-lines log file, OpenTelemetry spans."""
    from themis.adapters.telemetry_sinks import JsonLinesTelemetry, OpenTelemetrySpans

    sinks: list[Observer] = []
    if telemetry.log is not None:
        sinks.append(JsonLinesTelemetry(telemetry.log))
    if telemetry.opentelemetry:
        sinks.append(OpenTelemetrySpans())
    return sinks


def _store_file(store: StorePort) -> Path | None:
    """The file behind `store` if it is a DuckDB file (shared state is published beside it)."""
    if isinstance(store, DuckDBStore) and store.path != ":memory:":
        return Path(store.path)
    return None


def shared_provider_state(store: StorePort) -> ProviderStatePort | None:
    """Where executions on `store` share breaker windows and Retry-After pauses with other
    processes (ADR 0009): `<store>.providers/` beside a DuckDB file; nowhere for other stores."""
    path = _store_file(store)
    return None if path is None else FileProviderState(Path(f"{path}.providers"))


def provider_state_of(location: str | Path | StorePort) -> ProviderStatePort | None:
    """`shared_provider_state` of a store given by path (never opening it) or as a port."""
    if isinstance(location, str | Path):
        if str(location) in ("memory", ":memory:"):
            return None
        return FileProviderState(Path(f"{location}.providers"))
    return shared_provider_state(location)


def live_progress(store: StorePort) -> LiveProgressPort | None:
    """Where executions on `store` publish live progress for other processes (ADR 0007):
    `<store>.progress/` beside a DuckDB file; nowhere for other stores."""
    path = _store_file(store)
    return None if path is None else live_progress_beside(path)


def live_progress_beside(store_path: str | Path) -> LiveProgressPort:
    """The live progress published beside the store file at `store_path` (for readers that
    find it locked)."""
    return FileLiveProgress(progress_directory(store_path))


def live_progress_at(location: StoreLike) -> LiveProgressPort | None:
    """`live_progress` of a store given by path (never opening it) or as a port."""
    if isinstance(location, str | Path):
        if str(location) in ("memory", ":memory:"):
            return None
        return live_progress_beside(location)
    return live_progress(location)


def viewer_notice(store_path: str | Path) -> ViewerNotice:
    """Where a process serving a live viewer of the store file at `store_path` names its URL."""
    return ViewerNotice(progress_directory(store_path))


# A memory store's queue lives as long as the store (workers are threads of its process).
_MEMORY_QUEUES: weakref.WeakKeyDictionary[StorePort, RunQueuePort] = weakref.WeakKeyDictionary()


def run_queue_of(location: StoreLike) -> RunQueuePort:
    """The queue of runs submitted to a store (ADR 0031): `<store>.queue/` beside a store file,
    shared by every process; for a memory store given as a port, one kept with it."""
    from themis.adapters.run_queue import FileRunQueue, MemoryRunQueue, queue_directory

    if isinstance(location, str | Path):
        if str(location) in ("memory", ":memory:"):
            raise ConfigError(
                "a queue of runs needs a store file (--store FILE.duckdb): a memory store "
                "lives in one process, where no worker could take its runs"
            )
        return FileRunQueue(queue_directory(location))
    path = _store_file(location)
    if path is not None:
        return FileRunQueue(queue_directory(path))
    if location not in _MEMORY_QUEUES:
        _MEMORY_QUEUES[location] = MemoryRunQueue()
    return _MEMORY_QUEUES[location]


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (a queued run's worker, a live progress publisher)."""
    return pid_alive(pid)


def system_clock() -> ClockPort:
    from themis.adapters.clocks import SystemClock  # trio: only where time is needed

    return SystemClock()


def _by_provider(spec: ExperimentSpec) -> dict[str, list[ModelSpec]]:
    grouped: dict[str, list[ModelSpec]] = {}
    for model in all_models(spec):
        grouped.setdefault(model.provider, []).append(model)
    return dict(sorted(grouped.items()))


def check_executor(runtime: RuntimeConfig, source: object = None) -> None:
    """Refuse an executor that is not installed here (`source`: the config, to name it)."""
    if runtime.executor == "ray" and importlib.util.find_spec("ray") is None:
        where = "" if source is None else f"{source}: "
        raise ConfigError(
            f"{where}runtime.executor: 'ray' needs Ray, which is not installed: "
            "pip install 'themis[ray]'"
        )


def check_models(
    spec: ExperimentSpec,
    overrides: Mapping[str, ModelPort],
    runtime: RuntimeConfig | None = None,
) -> None:
    """Fail before any call if a model names a provider nobody serves, if its settings cannot
    work (options, API, endpoint), if an environment variable its endpoint needs is unset, or
    if the executor it asks for is not installed.
    """
    runtime = runtime or RuntimeConfig()
    check_executor(runtime)
    if runtime.executor == "ray":
        for metric in spec.metrics:
            for index, rule in enumerate(metric.rules):
                if rule.validator is not None:
                    raise ConfigError(
                        f"metrics.{metric.name}.rules[{index}].validator: validator plugins run "
                        "in the driver's process, which executor 'ray' does not run candidates "
                        "in; use a command rule, or executor = 'local'"
                    )
    if "fake" in runtime.endpoints:
        raise ConfigError("runtime.endpoints.fake: the built-in fake provider has no endpoint")
    for provider, models in _by_provider(spec).items():
        if provider in overrides or is_plugin_name(provider):  # plugins: found as they compiled
            continue
        if provider == "fake":
            from themis.adapters.models.scripted import check_options

            for model in models:
                problem = check_options(model.options)
                if problem is not None:
                    raise ConfigError(f"models.{model.name}.options: {problem}")
                if model.api is not None:
                    raise ConfigError(f"models.{model.name}.api: the fake provider has no API")
            continue
        if provider not in HTTP_PROVIDERS and provider not in runtime.endpoints:
            raise ConfigError(
                f"models.{models[0].name}.provider: unknown provider {provider!r} (available: "
                f"{', '.join(PROVIDERS)}, or any name given an endpoint in "
                f"[runtime.endpoints.{provider}])"
            )
        _http_model(provider, models, runtime, system_clock()).check_environment()


def endpoint_variables(spec: ExperimentSpec, runtime: RuntimeConfig) -> tuple[str, ...]:
    """The environment variables the endpoints of `spec`'s providers read (each once): a run
    checks them even when the log shows nothing left to call (`check_models`)."""
    names: list[str] = []
    for provider, models in _by_provider(spec).items():
        if provider == "fake" or is_plugin_name(provider):
            continue
        names.extend(_http_model(provider, models, runtime, system_clock()).variables())
    return tuple(dict.fromkeys(names))


def _api(model: ModelSpec) -> str:
    if model.api is not None:
        return model.api
    if model.provider in HTTP_PROVIDERS:
        return HTTP_PROVIDERS[model.provider][0]
    raise ConfigError(
        f"models.{model.name}.api: provider {model.provider!r} is not built in; say which API "
        "it serves: chat, completions or messages"
    )


def _family(api: str) -> str:
    return "anthropic" if api == "messages" else "openai"


def _check_http_models(provider: str, models: Sequence[ModelSpec], endpoint: Endpoint) -> str:
    """The API family (`openai` or `anthropic`) of a provider's models, or `ConfigError`."""
    apis = {model.name: _api(model) for model in models}
    family = provider if provider in HTTP_PROVIDERS else _family(apis[models[0].name])
    for name, api in apis.items():
        if _family(api) != family:
            served = "the messages API" if family == "anthropic" else "the chat/completions APIs"
            raise ConfigError(
                f"models.{name}.api: provider {provider!r} serves {served}, not {api!r}; "
                "give this model a provider of its own"
            )
    if endpoint.path is not None and len(set(apis.values())) > 1:
        raise ConfigError(
            f"runtime.endpoints.{provider}.path: one path cannot serve both the chat and the "
            "completions API; leave it unset or give the models separate providers"
        )
    if provider not in HTTP_PROVIDERS and endpoint.base_url is None:
        raise ConfigError(f"runtime.endpoints.{provider}.base_url: required for this provider")
    if endpoint.http2 and importlib.util.find_spec("h2") is None:
        raise ConfigError(
            f"runtime.endpoints.{provider}.http2: needs the h2 package (pip install 'httpx[http2]')"
        )
    for model in models:
        for key in model.options:
            if key in RESERVED_BODY_FIELDS:
                raise ConfigError(
                    f"models.{model.name}.options.{key}: Themis sets this request field itself "
                    "(from params and the prompt); it cannot be an option"
                )
        if family == "anthropic":
            for name in ("n", "logprobs"):
                if getattr(model.params, name) is not None:
                    raise ConfigError(
                        f"models.{model.name}.params.{name}: the Anthropic Messages API has no "
                        f"{name}"
                    )
    return family


def _pool_size(runtime: RuntimeConfig, provider: str) -> int:
    """Connections to keep: as many calls as the run lets be in flight for `provider`."""
    limits = [runtime.max_concurrent_tasks]
    for limit in (
        runtime.provider_concurrency.get(provider),
        runtime.stage_concurrency.get("generate"),
    ):
        if limit is not None:
            limits.append(limit)
    return min(limits)


def _http_model(
    provider: str, models: Sequence[ModelSpec], runtime: RuntimeConfig, clock: ClockPort
) -> HttpModel:
    # Imported here: httpx and httptools load only for a command that builds an HTTP model,
    # and each family's adapter only for its models.
    from themis.adapters.models.http import PoolLimits

    endpoint = runtime.endpoints.get(provider, Endpoint())
    family = _check_http_models(provider, models, endpoint)
    adapter: type[HttpModel]
    if family == "anthropic":
        from themis.adapters.models.anthropic import AnthropicModel

        adapter = AnthropicModel
    else:
        from themis.adapters.models.openai import OpenAICompatibleModel

        adapter = OpenAICompatibleModel
    if endpoint.api_key is None and provider in HTTP_PROVIDERS:  # the built-in default key
        endpoint = attrs.evolve(endpoint, api_key=HTTP_PROVIDERS[provider][1])
    return adapter(
        provider,
        endpoint,
        clock=clock,
        # Every call runs under the interpreter's `CallWatch` (call_timeout, idle_timeout): a
        # socket timeout as long as call_timeout would only bound it again, at a cost per call.
        pool=PoolLimits(size=_pool_size(runtime, provider), timeout=None),
    )


def _built_model(
    provider: str, models: Sequence[ModelSpec], runtime: RuntimeConfig, clock: ClockPort | None
) -> ScriptedModel | HttpModel:
    """The built-in adapter serving `provider` (`clock`: the system's when `None`, as on a
    Ray worker, where it is called from a pickled partial)."""
    clock = clock or system_clock()
    if provider == "fake":
        from themis.adapters.models.scripted import ScriptedModel

        journal = os.environ.get(FAKE_JOURNAL_ENV)
        return ScriptedModel(clock, journal=Path(journal) if journal else None)
    return _http_model(provider, models, runtime, clock)


@contextmanager
def model_ports(
    spec: ExperimentSpec,
    clock: ClockPort,
    overrides: Mapping[str, ModelPort] | None = None,
    runtime: RuntimeConfig | None = None,
) -> Iterator[dict[str, ModelPort]]:
    """One port per provider the experiment uses; `overrides` supplies or replaces providers.

    Ports built here are closed on exit (an HTTP port's connections are closed by the end of
    the trio run that opened them); ports passed in belong to the caller.
    """
    overrides = dict(overrides or {})
    runtime = runtime or RuntimeConfig()
    check_models(spec, overrides, runtime)
    ports: dict[str, ModelPort] = {}
    built: list[ScriptedModel | HttpModel] = []
    try:
        for provider, models in _by_provider(spec).items():
            if provider in overrides:
                ports[provider] = overrides[provider]
                continue
            model = _built_model(provider, tuple(models), runtime, clock)
            built.append(model)
            ports[provider] = model
        yield ports
    finally:
        for model in built:
            model.close()


def plugin_models(compiled: CompiledRun) -> dict[str, ModelPort]:
    """A port for each provider plugin the run's models name (found when it compiled)."""
    ports: dict[str, ModelPort] = {}
    for model in all_models(compiled.spec):
        found = compiled.plugins.get(PluginKind.MODEL, model.provider)
        if found is not None and found.implementation is not None and not found.builtin:
            from themis.adapters.models.plugin import PluginModel

            ports[model.provider] = PluginModel(model.provider, found.implementation)
    return ports


@functools.cache
def _isolation() -> str | None:
    from themis.adapters.sandbox import probe_isolation

    return probe_isolation()


def sandbox_for(spec: ExperimentSpec) -> SandboxPort | None:
    """The sandbox the experiment's `execution` metric runs candidates in; `None` without one.

    Isolation is probed once per process (ADR 0019).
    """
    for metric in spec.metrics:
        if metric.name == "execution":
            from themis.adapters.sandbox import SubprocessSandbox

            return SubprocessSandbox(metric.limits, isolate=_isolation() is None)
    return None


def sandbox_gaps(spec: ExperimentSpec) -> tuple[str, ...]:
    """What the experiment's sandbox cannot enforce on this machine (for the preflight output)."""
    sandbox = sandbox_for(spec)
    return () if sandbox is None else sandbox.gaps


@contextmanager
def execution_ports(
    store: StorePort,
    spec: ExperimentSpec,
    runtime: RuntimeConfig,
    models: Mapping[str, ModelPort] | None = None,
    clock: ClockPort | None = None,
    registry: ProviderRegistry | None = None,
) -> Iterator[Ports]:
    """Every port an execution of `spec` on `store` uses: the models (`models` supplies or
    replaces providers, see `model_ports`), the clock (default: the system's), the provider
    state and live progress shared beside a file store, and `registry` (default: a fresh one,
    owned by this execution)."""
    from themis.app.execution.ports import Ports
    from themis.app.execution.provider_registry import ProviderRegistry

    clock = clock or system_clock()
    with model_ports(spec, clock, models, runtime) as ports:
        ported = Ports(
            store=store,
            clock=clock,
            models=ports,
            provider_state=shared_provider_state(store),
            live=live_progress(store),
            sandbox=sandbox_for(spec),
            registry=registry or ProviderRegistry(),
        )
        if runtime.executor != "ray":
            yield ported
            return
        with _on_ray(spec, runtime, ported, set(models or ())) as on_ray:
            yield on_ray


@contextmanager
def _on_ray(
    spec: ExperimentSpec, runtime: RuntimeConfig, ports: Ports, kept: set[str]
) -> Iterator[Ports]:
    """`ports` with the models' calls and the sandbox's runs on a Ray cluster (ADR 0030).

    Each built-in provider's adapter is rebuilt on the cluster from a pickled partial of the
    config as written (its `${VAR}` credentials resolved there, at call time); ports passed in
    (`kept`: Python objects, plugins, a replay's refusing models) stay in this process.
    """
    # Imported here: Ray loads only for an execution that asks for it.
    from themis.adapters.ray import RaySandbox, hosted_models, joined_cluster
    from themis.adapters.ray.cluster import cluster_cpus
    from themis.adapters.sandbox import SubprocessSandbox

    factories = {
        provider: (
            functools.partial(_built_model, provider, tuple(models), runtime, None),
            getattr(ports.models[provider], "base_url", None),
        )
        for provider, models in _by_provider(spec).items()
        if provider not in kept
    }
    timeout = runtime.call_timeout
    concurrency = runtime.max_concurrent_tasks
    with (
        joined_cluster(runtime.ray_address),
        hosted_models(factories, concurrency=concurrency, call_timeout=timeout) as hosted,
    ):
        sandbox = ports.sandbox
        if isinstance(sandbox, SubprocessSandbox):
            sandbox = RaySandbox(sandbox.limits, sandbox.gaps, cluster_cpus())
        yield attrs.evolve(ports, models={**ports.models, **hosted}, sandbox=sandbox)

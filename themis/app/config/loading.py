"""Loading an experiment config (TOML or JSON) into the core's `ExperimentSpec` and `RuntimeConfig`.

A benchmark config (a `[dataset]` table, `[[slices]]`, `[[prompt_variants]]`, `[[splits]]`) is
structured as a `BenchmarkSpec` and loaded as the experiment it compiles to.

The steps are: read and parse the file, apply `--set` overrides to the raw tables, structure them
strictly into the attrs classes, read each dataset's cases relative to the config file, then run
the compile-time checks (`themis.core.checks`) on the whole.
Every expected failure raises `ConfigError`, whose message is one line naming the file, the key
path and the value: what every caller (the CLI, the Python API, resume) wants.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen

from themis.app.config.datasets import load_cases
from themis.app.config.overrides import apply_override, parse_override
from themis.app.config.plugins import resolve_plugins
from themis.app.config.structuring import structure
from themis.core.benchmark import BenchmarkSpec
from themis.core.builtins import builtin_plugins
from themis.core.checks import ALL_CHECKS, Check, config_problems
from themis.core.errors import ConfigError
from themis.core.large_run import is_large_run, large_run_cases
from themis.core.packed_cases import PackedCases, packed
from themis.core.plugins import PluginRegistry
from themis.core.runtime import RuntimeConfig
from themis.core.spec import DatasetSpec, ExperimentSpec

__all__ = [
    "LoadedConfig",
    "check_config",
    "config_from_mapping",
    "load_benchmark",
    "load_config",
    "parse_override",
    "read_table",
    "runtime_from_mapping",
]

CONFIG_FORMATS = (".toml", ".json")


@frozen
class LoadedConfig:
    """A validated experiment with its cases loaded, how to run it, the file it came from and
    the plugins (with the built-ins) it names."""

    spec: ExperimentSpec
    runtime: RuntimeConfig
    source: Path
    plugins: PluginRegistry = field(factory=builtin_plugins)


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    defaults: Mapping[str, Any] | None = None,
    plugins: PluginRegistry | None = None,
) -> LoadedConfig:
    """Read the config at `path`, apply `--set KEY=VALUE` overrides in order, and validate it.

    `defaults` fill in top-level keys the file does not give (a project's global seed);
    `plugins`: plugins registered in Python that the config may name, beside installed ones.
    """
    file = Path(path)
    name = str(path)
    data = {**(defaults or {}), **read_table(file, name)}
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value, text)
    source = file.resolve()
    return _build(data, base_dir=source.parent, source_name=name, source=source, plugins=plugins)


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    source_name: str,
    plugins: PluginRegistry | None = None,
) -> LoadedConfig:
    """The same validation as `load_config` for tables built in Python; paths resolve in `base_dir`.

    The result's `source` is `Path(source_name)`, as there is no file.
    """
    return _build(
        data, base_dir=base_dir, source_name=source_name, source=Path(source_name), plugins=plugins
    )


def check_config(
    spec: ExperimentSpec,
    runtime: RuntimeConfig,
    source_name: str,
    checks: Sequence[Check] = ALL_CHECKS,
) -> None:
    """Refuse a config that fails a compile-time check (`themis.core.checks`): a one-line
    `ConfigError` naming the file, the key and the value of its first problem."""
    problems = config_problems(spec, runtime, checks)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{source_name}: {problems[0]}{more}")


def runtime_from_mapping(data: Any, source_name: str) -> RuntimeConfig:
    """The `[runtime]` table as a `RuntimeConfig`; errors name keys as `runtime.<key>`."""
    return structure(data, RuntimeConfig, source=source_name, prefix="runtime")


def read_table(file: Path, name: str) -> dict[str, Any]:
    """The TOML or JSON file's top-level table; `ConfigError` naming `name` if unreadable."""
    suffix = file.suffix.lower()
    if suffix not in CONFIG_FORMATS:
        raise ConfigError(
            f"{name}: unsupported config format {suffix or '(none)'!r} (use .toml or .json)"
        )
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, not a config file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{name}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{name}: cannot read: {error.strerror}") from None
    if suffix == ".toml":
        import tomllib  # (a config file's: not imported by a run of a spec)

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{name}: invalid TOML: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{name}: invalid JSON: {error.msg} (at line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a JSON object at the top level, got {data!r:.40}")
    return data


def load_benchmark(
    benchmark: BenchmarkSpec,
    *,
    base_dir: Path,
    source_name: str,
    runtime: RuntimeConfig | None = None,
    plugins: PluginRegistry | None = None,
) -> LoadedConfig:
    """A `BenchmarkSpec` built in Python as its experiment, its rows read (paths resolve in
    `base_dir`) and checked as a config file's are."""
    spec = _experiment_of(benchmark, source_name)
    return _loaded(
        spec, runtime or RuntimeConfig(), base_dir, source_name, Path(source_name), plugins
    )


def _experiment_of(benchmark: BenchmarkSpec, source_name: str) -> ExperimentSpec:
    try:
        return benchmark.experiment()
    except ValueError as error:  # the compiled experiment's own checks
        raise ConfigError(f"{source_name}: {error}") from None


def _build(
    data: Any,
    *,
    base_dir: Path,
    source_name: str,
    source: Path,
    plugins: PluginRegistry | None = None,
) -> LoadedConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source_name}: expected a table at the top level, got {data!r:.40}")
    tables = dict(data)
    runtime_table = tables.pop("runtime", {})
    if "dataset" in tables:  # a benchmark: one dataset, its slices and prompt variants
        if "datasets" in tables or "prompts" in tables:
            raise ConfigError(
                f"{source_name}: a benchmark (with [dataset]) takes [[slices]] and "
                "[[prompt_variants]], not [[datasets]] or [[prompts]]"
            )
        benchmark = structure(tables, BenchmarkSpec, source=source_name)
        spec = _experiment_of(benchmark, source_name)
    else:
        spec = structure(tables, ExperimentSpec, source=source_name)
    runtime = runtime_from_mapping(runtime_table, source_name)
    return _loaded(spec, runtime, base_dir, source_name, source, plugins)


def _loaded(
    spec: ExperimentSpec,
    runtime: RuntimeConfig,
    base_dir: Path,
    source_name: str,
    source: Path,
    plugins: PluginRegistry | None,
) -> LoadedConfig:
    resolved = resolve_plugins(spec, source_name, plugins)
    # From how many cases the run is large (ADR 0100): a dataset is packed as it is read once
    # it and the datasets before it hold that many (its slice may then keep fewer: a run found
    # small at the end gets its cases back as a tuple).
    large_from = large_run_cases(len(spec.models) * len(spec.prompts) * spec.samples)
    datasets: list[DatasetSpec] = []
    for index, dataset in enumerate(spec.datasets):
        before = sum(len(loaded.cases) for loaded in datasets)
        datasets.append(
            _with_cases(
                f"datasets[{index}]",
                dataset,
                base_dir,
                source_name,
                resolved,
                pack_from=max(large_from - before, 1),
            )
        )
    prompts = tuple(
        prompt
        if prompt.few_shot is None
        else attrs.evolve(
            prompt,
            few_shot=attrs.evolve(
                prompt.few_shot,
                examples=_with_cases(
                    f"prompts[{index}].few_shot.examples",
                    prompt.few_shot.examples,
                    base_dir,
                    source_name,
                    resolved,
                ),
            ),
        )
        for index, prompt in enumerate(spec.prompts)
    )
    spec = attrs.evolve(spec, datasets=datasets, prompts=prompts)
    check_config(spec, runtime, source_name)
    return LoadedConfig(
        spec=_packed_if_large(spec), runtime=runtime, source=source, plugins=resolved
    )


def _packed_if_large(spec: ExperimentSpec) -> ExperimentSpec:
    """`spec` with its datasets' cases packed in a block each if its run is large (ADR 0089):
    ~0.1 KiB a case held for the run instead of ~0.42, for ~1-3 µs each time a case is read
    (the identity, the plan, the snapshot and the report each read every case). A smaller
    run's cases are a tuple (a block read from a large file, then sliced, made a tuple again).
    A dataset read as a block stays one (ADR 0100); the others are packed once checked."""
    large = is_large_run(spec.trial_count)
    if not large and not any(isinstance(d.cases, PackedCases) for d in spec.datasets):
        return spec
    datasets = [
        attrs.evolve(dataset, cases=packed(dataset.cases) if large else tuple(dataset.cases))
        for dataset in spec.datasets
    ]
    return attrs.evolve(spec, datasets=datasets)


def _with_cases(
    key: str,
    dataset: DatasetSpec,
    base_dir: Path,
    source_name: str,
    plugins: PluginRegistry,
    pack_from: int | None = None,
) -> DatasetSpec:
    try:
        cases = load_cases(dataset, base_dir, plugins, pack_from)
    except ConfigError as error:
        # `load_cases` messages start with the DatasetSpec field (`path: ...`).
        raise ConfigError(f"{source_name}: {key}.{error}") from None
    return attrs.evolve(dataset, cases=cases)

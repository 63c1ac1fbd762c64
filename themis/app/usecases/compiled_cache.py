"""Answering "already complete" without compiling: the compiled facts of runs and configs
(`themis.core.compiled_facts`, ADR 0034).

`themis resume RUN` and `themis run CONFIG` of a completed run used to decode the stored
snapshot (every case), compile it, fold or decode the state, and (for `run`) read and hash every
case of the dataset again, only to print the report the checkpoint already holds. Here they
answer from the run's facts and its checkpoint summary when both are current: the facts were
written with the checkpoint the log ends at, the run is complete through the stage asked for,
and (for a config) the config file, its overrides and every dataset file it read hash as when
the entry was written. Any doubt falls back to the full path, which gives the same answer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import attrs

from themis.app.usecases.stored import RunResult
from themis.core.compiled_facts import CompiledFacts, config_key, run_key
from themis.core.errors import ConfigError, StoreError
from themis.core.judging import all_models, final_stage
from themis.core.planner import CompiledRun, stand_in_id
from themis.core.runtime import RuntimeConfig
from themis.core.spec import DatasetSpec
from themis.core.stages import Stage
from themis.ports.store import StorePort

__all__ = [
    "ConfigSource",
    "answer_complete",
    "answer_config",
    "config_source",
    "remember_config",
    "remember_run",
]

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str | None:
    """The sha256 of a file's bytes; `None` if it cannot be read."""
    hashed = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                hashed.update(chunk)
    except OSError:
        return None
    return hashed.hexdigest()


def _facts(
    compiled: CompiledRun, runtime: RuntimeConfig, variables: Sequence[str], seq: int = 0
) -> CompiledFacts | None:
    """The facts of `compiled` run under `runtime`; `None` for a run naming plugins (their
    installed versions decide whether it can be read at all: the full path checks that)."""
    if any(not known.builtin for known in compiled.plugins):
        return None
    spec = compiled.spec
    return CompiledFacts(
        run_id=compiled.run_id,
        name=spec.name,
        final_stage=final_stage(spec),
        providers=tuple(sorted({model.provider for model in all_models(spec)})),
        versions=compiled.builtin_versions,
        progress=runtime.progress,
        seq=seq,
        variables=tuple(variables),
    )


def remember_run(
    store: StorePort, compiled: CompiledRun, runtime: RuntimeConfig, variables: Sequence[str]
) -> None:
    """After an execution under `runtime`: keep the run's facts for the checkpoint it wrote."""
    summary = store.load_checkpoint_summary(compiled.run_id)
    if summary is None:
        return
    facts = _facts(compiled, runtime, variables, summary.seq)
    if facts is not None:
        with suppress(StoreError):  # a cache: failing to keep it loses only time
            store.save_facts(run_key(compiled.run_id), _vouching(store, compiled, facts))


def _vouching(store: StorePort, compiled: CompiledRun, facts: CompiledFacts) -> CompiledFacts:
    """`facts` vouching for the run's snapshot as this execution saved it, or read it (ADR
    0077): readers then check its identity from its outline, without reading a case."""
    saved_as = store.snapshot_saved_as(compiled.run_id)
    if saved_as is None:  # not stored: nothing to vouch for
        return facts
    return attrs.evolve(facts, snapshot=saved_as, stand_in=stand_in_id(compiled))


def answer_complete(
    store: StorePort, run_id: str, until_stage: Stage | None = None
) -> tuple[CompiledFacts, RunResult] | None:
    """The stored run's cached report, reused, if its facts were kept with the checkpoint the
    log ends at and it is complete through `until_stage` (default: its last stage); else
    `None`."""
    facts = store.load_facts(run_key(run_id))
    if facts is None:
        return None
    result = _reused(store, facts, until_stage, facts.seq)
    return None if result is None else (facts, result)


def _reused(
    store: StorePort, facts: CompiledFacts, until_stage: Stage | None, seq: int | None
) -> RunResult | None:
    """`facts`' run reused from its checkpoint's report, if that report is current (and its
    seq is `seq`, when given), the run complete through `until_stage` (default: its last
    stage), and nothing the full path would refuse or check is in doubt."""
    if facts.outdated:  # an outdated run is refused by the full path
        return None
    until = until_stage or facts.final_stage
    if until.order > facts.final_stage.order:  # `judge` without judges: refused there too
        return None
    if any(not os.environ.get(name) for name in facts.variables):  # named there
        return None
    run_id = facts.run_id
    summary = store.load_checkpoint_summary(run_id)
    if summary is None or summary.report is None or seq not in (None, summary.seq):
        return None
    if not summary.is_complete_through(until) or store.last_seq(run_id) != summary.seq:
        return None
    report = attrs.evolve(summary.report, name=facts.name)
    return RunResult(report=report, reused=True, trials_executed=0, model_calls=0)


@attrs.frozen
class ConfigSource:
    """A config file as `themis run` read it: its entry's key and the dataset files it read."""

    key: str
    files: tuple[tuple[str, str], ...]


def _key(path: Path, overrides: Sequence[str]) -> str | None:
    from themis.app.usecases.reporting import themis_version

    sha = file_sha256(path)
    if sha is None:
        return None
    return config_key(sha, str(path.resolve()), overrides, themis_version())


def _dataset_files(datasets: Sequence[DatasetSpec], base_dir: Path) -> list[Path] | None:
    from themis.app.config.datasets import package_dir, resolve_path  # only when keeping

    files: list[Path] = []
    for dataset in datasets:
        if dataset.loader is not None:  # a plugin reads what it reads
            return None
        if dataset.path is None:  # inline cases: in the config's bytes
            continue
        try:
            where = package_dir(dataset.package) if dataset.package is not None else base_dir
        except ConfigError:
            return None
        file = resolve_path(dataset.path, where)
        if not file.is_file():  # e.g. a Hugging Face dataset directory
            return None
        files.append(file)
    return files


def config_source(
    path: Path, overrides: Sequence[str], compiled: CompiledRun
) -> ConfigSource | None:
    """What identifies the config at `path` (with `overrides`) that compiled to `compiled`;
    `None` when something besides its files decides the run (plugins, a dataset loader)."""
    if any(not known.builtin for known in compiled.plugins):
        return None
    spec = compiled.spec
    few_shot = [p.few_shot.examples for p in spec.prompts if p.few_shot is not None]
    files = _dataset_files([*spec.datasets, *few_shot], path.resolve().parent)
    key = _key(path, overrides)
    if files is None or key is None:
        return None
    digests = [(str(file), file_sha256(file)) for file in dict.fromkeys(files)]
    if any(sha is None for _, sha in digests):
        return None
    return ConfigSource(key, tuple((file, sha) for file, sha in digests if sha is not None))


def remember_config(
    store: StorePort,
    source: ConfigSource,
    compiled: CompiledRun,
    runtime: RuntimeConfig,
    facts: tuple[Sequence[str], Sequence[str]],
) -> None:
    """Keep the config's entry: its run, files, and `facts` = (the environment variables its
    endpoints read, the lines `themis run` prints before executing)."""
    variables, notices = facts
    found = _facts(compiled, runtime, variables)
    if found is None or runtime.existing_run_policy != "auto":
        return
    entry = attrs.evolve(found, files=source.files, notices=tuple(notices))
    with suppress(StoreError):
        store.save_facts(source.key, entry)


def answer_config(
    store: StorePort, path: Path, overrides: Sequence[str], until_stage: Stage | None
) -> tuple[CompiledFacts, RunResult] | None:
    """`themis run` of the config at `path` answered from the store, if its entry is current
    (the config, its overrides and every dataset file hash as when it was kept) and its run is
    complete through `until_stage` (default: its last stage); else `None`."""
    key = _key(path, overrides)
    facts = None if key is None else store.load_facts(key)
    if facts is None:
        return None
    if any(file_sha256(file) != sha for file, sha in facts.files):
        return None
    result = _reused(store, facts, until_stage, None)
    return None if result is None else (facts, result)

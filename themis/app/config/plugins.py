"""Finding the plugins a config names: importing a `module:attr` reference, or reading the package
entry points of group `themis.plugins`. Every failure is a one-line `PluginError` naming the
plugin (its reference, or the entry point and the distribution that declares it).

A plugin's version is the one its `plugin` label gives, else its installed distribution's,
else `src-<digest>` of its module's source, so editing unversioned research code is a new run.
Its declared parameters are its keyword parameters with their defaults.

The registry these plugins go into is `themis.core.plugins` (the same concept, pure): this
module only finds and imports them.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from themis.core.builtins import builtin_plugins
from themis.core.errors import PluginError
from themis.core.plugins import (
    Plugin,
    PluginKind,
    PluginRegistry,
    declared_params,
    is_plugin_name,
    plugin_info,
)

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint
from themis.core.spec import ExperimentSpec
from themis.core.validation import close_name, unknown_name

__all__ = [
    "ENTRY_POINT_GROUP",
    "entry_point_names",
    "load_entry_point",
    "load_reference",
    "resolve_plugins",
]

ENTRY_POINT_GROUP = "themis.plugins"


def load_reference(kind: PluginKind, reference: str) -> Plugin:
    """The plugin `module:attr` (attr may be dotted) names, imported now."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise PluginError(f"{kind} plugin {reference!r}: expected 'module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PluginError(
            f"{kind} plugin {reference!r}: cannot import {module_name}: {error}"
        ) from None
    except Exception as error:
        raise PluginError(
            f"{kind} plugin {reference!r}: importing {module_name} raised "
            f"{type(error).__name__}: {error}"
        ) from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            close = close_name(part, [name for name in dir(value) if not name.startswith("_")])
            hint = f" (did you mean {close!r}?)" if close else ""
            raise PluginError(
                f"{kind} plugin {reference!r}: {module_name} has no {attribute!r}{hint}"
            )
        value = getattr(value, part)
    return _plugin(kind, reference, reference, value, None)


# `importlib.metadata` is imported where it is read: its import (~25 ms of CPU, `email` and
# `zipfile` with it) would otherwise come before every run's first call, for entry points and
# distributions only a config naming a plugin of neither kind asks about.


@cache
def _entry_points() -> Mapping[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def entry_point_names() -> tuple[str, ...]:
    """The names of the installed `themis.plugins` entry points (read once per process)."""
    return tuple(sorted(_entry_points()))


def load_entry_point(kind: PluginKind, name: str) -> Plugin | None:
    """The plugin the entry point `name` declares, or `None` when no package declares it."""
    entry = _entry_points().get(name)
    if entry is None:
        return None
    dist = entry.dist
    where = f"entry point {name!r} ({entry.value}" + (f", from {dist.name})" if dist else ")")
    try:
        value = entry.load()
    except Exception as error:
        raise PluginError(
            f"{kind} plugin {where}: loading it raised {type(error).__name__}: {error}"
        ) from None
    info = plugin_info(value)
    if info is not None and info.kind is not kind:
        raise PluginError(f"{kind} plugin {where} is a {info.kind} plugin, not a {kind}")
    return _plugin(kind, name, entry.value, value, None if dist is None else dist.version)


def _plugin(
    kind: PluginKind, name: str, reference: str, value: Any, dist_version: str | None
) -> Plugin:
    info = plugin_info(value)
    if info is not None and info.kind is not kind:
        raise PluginError(f"{kind} plugin {name!r} is a {info.kind} plugin, not a {kind}")
    if not callable(value):
        raise PluginError(f"{kind} plugin {name!r} is a {type(value).__name__}, not callable")
    module = reference.partition(":")[0]
    version = (
        (info.version if info is not None else None)
        or dist_version
        or _distribution_version(module)
        or _source_version(module)
    )
    return Plugin(
        kind=kind,
        name=name,
        reference=reference,
        version=version,
        params=declared_params(value),
        implementation=value,
    )


@cache
def _distributions() -> Mapping[str, list[str]]:
    """Top-level module → the distributions that install it (read once per process: ~0.5 s)."""
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _distribution_version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    top = module.partition(".")[0]
    for dist in _distributions().get(top, []):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def _source_version(module: str) -> str:
    """`src-` and the first 12 hex digits of the sha256 of the module's source file."""
    file = getattr(sys.modules.get(module), "__file__", None)
    try:
        data = b"" if file is None else Path(file).read_bytes()
    except OSError:
        data = b""
    return "src-" + hashlib.sha256(data).hexdigest()[:12]


def _named_plugins(
    spec: ExperimentSpec,
) -> Iterator[tuple[str, PluginKind, str, Mapping[str, Any]]]:
    """Every plugin `spec` names: (config key, kind, name, the params the config gives it)."""
    if is_plugin_name(spec.parser.name):
        yield "parser.name", PluginKind.PARSER, spec.parser.name, spec.parser.params
    reducer = spec.reducer
    if reducer is not None and is_plugin_name(reducer.name):
        yield "reducer.name", PluginKind.REDUCER, reducer.name, reducer.params
    for index, metric in enumerate(spec.metrics):
        if is_plugin_name(metric.name):
            yield f"metrics[{index}].name", PluginKind.METRIC, metric.name, metric.params
        for number, rule in enumerate(metric.rules):
            if rule.validator is not None:
                key = f"metrics[{index}].rules[{number}].validator"
                yield key, PluginKind.VALIDATOR, rule.validator, rule.params
    for index, model in enumerate(spec.models):
        if is_plugin_name(model.provider):
            yield f"models[{index}].provider", PluginKind.MODEL, model.provider, {}
    for index, judge in enumerate(spec.judges):
        verdict = judge.verdict
        if is_plugin_name(verdict.kind):
            yield f"judges[{index}].verdict.kind", PluginKind.JUDGE, verdict.kind, verdict.params
        for number, model in enumerate(judge.models):
            if is_plugin_name(model.provider):
                key = f"judges[{index}].models[{number}].provider"
                yield key, PluginKind.MODEL, model.provider, {}
    sources = [(f"datasets[{i}]", dataset) for i, dataset in enumerate(spec.datasets)]
    sources += [
        (f"prompts[{i}].few_shot.examples", prompt.few_shot.examples)
        for i, prompt in enumerate(spec.prompts)
        if prompt.few_shot is not None
    ]
    for key, dataset in sources:
        if dataset.loader is not None:
            yield f"{key}.loader", PluginKind.DATASET_LOADER, dataset.loader, dataset.params


def resolve_plugins(
    spec: ExperimentSpec, source_name: str, registry: PluginRegistry | None = None
) -> PluginRegistry:
    """A registry with the built-ins, `registry`'s plugins and every plugin `spec` names,
    imported (`module:attr`) or read from entry points; a `ConfigError` names the config key of
    a missing or broken plugin, or of a parameter the plugin does not declare."""
    resolved = builtin_plugins()
    for known in registry or ():
        if not known.builtin:
            resolved.register(known)
    for key, kind, name, params in _named_plugins(spec):
        found = resolved.get(kind, name)
        try:
            if found is None:
                found = load_reference(kind, name) if ":" in name else load_entry_point(kind, name)
        except PluginError as error:
            raise PluginError(f"{source_name}: {key}: {error}") from None
        if found is None:
            known_names = [
                *entry_point_names(),
                *(p.name for p in resolved if p.kind is kind and not p.builtin),
            ]
            raise PluginError(
                f"{source_name}: {key}: {unknown_name(f'{kind} plugin', name, known_names)}; "
                "install the package that declares it (entry point group "
                f"{ENTRY_POINT_GROUP!r}) or write 'module:attr'"
            )
        resolved.register(found)
        for param in params:
            if param not in found.params:
                raise PluginError(
                    f"{source_name}: {key.rsplit('.', 1)[0]}.params: "
                    f"{unknown_name(f'parameter of {kind} plugin {name!r}', param, found.params)}"
                )
    return resolved

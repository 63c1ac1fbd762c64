"""Plugins: parsers, metrics, models, dataset loaders (and reducers, judges, validators) that live
outside Themis, held in one `PluginRegistry` beside the built-ins.

A config names a plugin by a dotted name (`mylab.f1`, an entry point of group `themis.plugins`)
or by a `module:attr` reference (`mylab.metrics:f1`); bare names (`exact_match`) are built in.
A plugin's identity (reference, version, declared parameters) enters the `run_id`, so a new
version of a metric is a new run, never silently different numbers under an old id.
This module is pure: importing modules and reading entry points is done by
`themis.adapters.plugin_loading`; the `plugin` decorator only labels a function.

Finding the plugins a config names (imports, entry points) is `themis.app.config.plugins`, the
same concept in the shell.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from attrs import field, frozen

__all__ = [
    "PLUGIN_ATTRIBUTE",
    "Plugin",
    "PluginInfo",
    "PluginKind",
    "PluginRegistry",
    "declared_params",
    "is_plugin_name",
    "plugin",
]

F = TypeVar("F", bound=Callable[..., Any])
PLUGIN_ATTRIBUTE = "__themis_plugin__"  # where `plugin` leaves its label on a function


class PluginKind(StrEnum):
    """What a plugin is used as; a config field names one kind (a metric's `name`, ...)."""

    MODEL = "model"
    DATASET_LOADER = "dataset_loader"
    PARSER = "parser"
    REDUCER = "reducer"
    METRIC = "metric"
    JUDGE = "judge"
    VALIDATOR = "validator"


def is_plugin_name(name: str) -> bool:
    """Whether a config's name refers to a plugin: dotted or `module:attr`; bare names are
    built in, so a misspelt built-in is still refused as such."""
    return "." in name or ":" in name


def _mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@frozen
class PluginInfo:
    """What the `plugin` decorator records: the kind, and optionally a name and version."""

    kind: PluginKind
    name: str | None = None
    version: str | None = None


@frozen
class Plugin:
    """One registered implementation: its kind, the name configs use, where it comes from
    (`reference`, `module:attr`, or `themis:<name>` for a built-in), its version, the parameters
    it declares with their defaults, and the implementation itself (not part of equality)."""

    kind: PluginKind
    name: str
    reference: str
    version: str
    params: Mapping[str, Any] = field(factory=dict, converter=_mapping)
    implementation: Callable[..., Any] | None = field(default=None, eq=False, repr=False)
    builtin: bool = False

    def identity(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What enters the `run_id`: reference, version and the declared parameters with the
        values a config gave (`params`) over their defaults."""
        return {
            "reference": self.reference,
            "version": self.version,
            "params": {**self.params, **(params or {})},
        }


class PluginRegistry:
    """The plugins a run may use, by kind and name. Built-ins are registered as the core
    declares them (`themis.core.builtins`); other plugins are added with `register`."""

    def __init__(self, plugins: Iterable[Plugin] = ()) -> None:
        self._plugins: dict[tuple[PluginKind, str], Plugin] = {}
        for item in plugins:
            self.register(item)

    def register(self, item: Plugin | Callable[..., Any]) -> Plugin:
        """Add `item`: a `Plugin`, or a function labelled by `plugin` with a name and version.
        A name already taken by another implementation is a `ValueError`."""
        if not isinstance(item, Plugin):
            item = _labelled(item)
        key = (item.kind, item.name)
        known = self._plugins.get(key)
        if known is not None and (known.reference, known.version) != (item.reference, item.version):
            raise ValueError(
                f"{item.kind} plugin {item.name!r} is registered twice "
                f"({known.reference} {known.version} and {item.reference} {item.version})"
            )
        self._plugins[key] = item
        return item

    def get(self, kind: PluginKind, name: str) -> Plugin | None:
        """The plugin of `kind` called `name`, if registered."""
        return self._plugins.get((kind, name))

    def require(self, kind: PluginKind, name: str) -> Plugin:
        """The plugin of `kind` called `name`; a `KeyError` naming it when there is none."""
        found = self._plugins.get((kind, name))
        if found is None:
            raise KeyError(f"no {kind} plugin is named {name!r}")
        return found

    def names(self, kind: PluginKind) -> tuple[str, ...]:
        """The names registered for `kind`, sorted."""
        return tuple(sorted(name for known, name in self._plugins if known is kind))

    def __iter__(self) -> Iterator[Plugin]:
        return iter(self._plugins.values())

    def __contains__(self, key: object) -> bool:
        return key in self._plugins

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PluginRegistry) and self._plugins == other._plugins

    def __hash__(self) -> int:
        return hash(frozenset(self._plugins.items()))

    def __repr__(self) -> str:
        external = [p.name for p in self._plugins.values() if not p.builtin]
        return f"PluginRegistry({len(self._plugins)} plugins, external: {external})"


def _labelled(function: Callable[..., Any]) -> Plugin:
    info = plugin_info(function)
    what = getattr(function, "__qualname__", repr(function))
    if info is None or info.name is None or info.version is None:
        raise ValueError(
            f"{what}: register a function labelled @plugin(kind, name='pkg.name', "
            "version='1'), or name it in a config as 'module:attr'"
        )
    module = getattr(function, "__module__", "?")
    return Plugin(
        kind=info.kind,
        name=info.name,
        reference=f"{module}:{what}",
        version=info.version,
        params=declared_params(function),
        implementation=function,
    )


def declared_params(value: Callable[..., Any]) -> dict[str, Any]:
    """The keyword parameters `value` declares, with their defaults (JSON values, else their
    repr): a plugin's parameters, whose values enter the run's identity."""
    import inspect  # only registering a plugin needs it: keeps startup light

    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return {}
    params: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.default is inspect.Parameter.empty:
            continue
        default = parameter.default
        try:
            json.dumps(default, allow_nan=False)
        except (TypeError, ValueError):
            default = repr(default)
        params[parameter.name] = default
    return params


def plugin(
    kind: PluginKind | str, *, name: str | None = None, version: str | None = None
) -> Callable[[F], F]:
    """Label a function as a plugin of `kind` (research code's form, as Inspect's `@scorer`).

    `name` (dotted, e.g. `mylab.f1`) is how a registry or an entry point calls it; `version`
    enters the `run_id` (unset: the installed distribution's version, else a digest of the
    module's source). The function is returned unchanged.
    """
    info = PluginInfo(kind=PluginKind(kind), name=name, version=version)
    if name is not None and not is_plugin_name(name):
        raise ValueError(f"plugin name {name!r} must be dotted (e.g. 'mylab.{name}')")

    def label(function: F) -> F:
        setattr(function, PLUGIN_ATTRIBUTE, info)
        return function

    return label


def plugin_info(value: object) -> PluginInfo | None:
    """The label `plugin` left on `value`, if any."""
    info = getattr(value, PLUGIN_ATTRIBUTE, None)
    return info if isinstance(info, PluginInfo) else None


PROVENANCE_KEY = "plugins"  # where a run's snapshot records the plugins it was compiled with


def plugins_provenance(registry: PluginRegistry) -> dict[str, str]:
    """The plugins (not built-ins) of `registry` as a snapshot's provenance entry: what reading
    the stored run back needs to recompile it without importing them."""
    used = sorted(
        (
            {
                "kind": str(item.kind),
                "name": item.name,
                "reference": item.reference,
                "version": item.version,
                "params": dict(item.params),
            }
            for item in registry
            if not item.builtin
        ),
        key=lambda entry: (entry["kind"], entry["name"]),
    )
    return {PROVENANCE_KEY: json.dumps(used, sort_keys=True)} if used else {}


def recorded_plugins(provenance: Mapping[str, str], base: PluginRegistry) -> PluginRegistry:
    """`base` with the plugins a snapshot's provenance records, as identities only (no
    implementation: enough to recompile and report the run, not to parse or score again)."""
    registry = PluginRegistry(base)
    for entry in json.loads(provenance.get(PROVENANCE_KEY, "[]")):
        key = (PluginKind(entry["kind"]), entry["name"])
        if key not in registry:
            registry.register(
                Plugin(
                    kind=key[0],
                    name=entry["name"],
                    reference=entry["reference"],
                    version=entry["version"],
                    params=entry["params"],
                )
            )
    return registry


def missing_implementations(registry: PluginRegistry) -> tuple[Plugin, ...]:
    """The plugins of `registry` known only by their identity (recorded, not loaded)."""
    return tuple(item for item in registry if not item.builtin and item.implementation is None)

"""The built-in parsers, metrics, reducers, providers and dataset formats as registry entries.

They are registered the way plugins are (`themis.core.plugins`), so a registry lists every name a
config may use; their identity stays the integer version the run's `implementations` held
before plugins existed (ADR 0026), so no stored `run_id` changes.
"""

from __future__ import annotations

from themis.core.plugins import Plugin, PluginKind, PluginRegistry
from themis.core.scoring import METRIC_VERSIONS, PARSER_VERSIONS
from themis.core.spec import DATASET_FORMATS, REDUCER_NAMES

__all__ = ["BUILTIN_PROVIDERS", "builtin_plugins"]

BUILTIN_PROVIDERS = ("fake", "openai", "anthropic")


def _builtin(kind: PluginKind, name: str, version: int | str) -> Plugin:
    return Plugin(
        kind=kind, name=name, reference=f"themis:{name}", version=str(version), builtin=True
    )


def builtin_plugins() -> PluginRegistry:
    """A registry holding every built-in; add plugins to it with `register`."""
    return PluginRegistry(
        [
            *(_builtin(PluginKind.PARSER, n, v) for n, v in PARSER_VERSIONS.items()),
            *(_builtin(PluginKind.METRIC, n, v) for n, v in METRIC_VERSIONS.items()),
            *(_builtin(PluginKind.REDUCER, n, 1) for n in REDUCER_NAMES),
            *(_builtin(PluginKind.MODEL, n, 1) for n in BUILTIN_PROVIDERS),
            *(_builtin(PluginKind.DATASET_LOADER, n, 1) for n in DATASET_FORMATS),
        ]
    )

"""`--set KEY=VALUE` overrides, applied to the raw config tables before they are validated.

Only the shape of the path is checked here; whether the key is a real field, and whether the value
fits it, is decided afterwards by the same validation that checks the file.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from themis.core.errors import ConfigError

__all__ = ["apply_override", "parse_override"]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `KEY=VALUE` into the dotted key's segments and the value read as a TOML literal.

    A value that is not a TOML literal (`--set name=demo`) is taken as a bare string; malformed
    text raises `ConfigError`.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text}: expected KEY=VALUE")
    path = [segment.strip() for segment in key.split(".")]
    if any(not segment for segment in path):
        raise ConfigError(f"--set {text}: empty segment in key {key!r}")
    return path, _literal(raw.strip())


def _literal(raw: str) -> Any:
    if "\n" in raw or "\r" in raw:
        return raw
    import tomllib  # (an override's: not imported by a run of a spec)

    try:
        parsed = tomllib.loads(f"value = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    if set(parsed) != {"value"} or _has_datetime(parsed["value"]):
        return raw
    return parsed["value"]


def _has_datetime(value: Any) -> bool:
    """TOML dates are not config values; `--set name=2024-01-01` means the string."""
    import datetime  # (tomllib has imported it: `_literal` parsed the value first)

    if isinstance(value, datetime.date | datetime.time):
        return True
    if isinstance(value, list):
        return any(_has_datetime(item) for item in value)
    if isinstance(value, dict):
        return any(_has_datetime(item) for item in value.values())
    return False


def apply_override(data: MutableMapping[str, Any], path: list[str], value: Any, text: str) -> None:
    """Set `value` at `path` inside `data` in place; raise `ConfigError` naming `--set {text}`.

    Missing tables along the path are created. In an array of tables a numeric segment is an index
    and any other segment selects the item whose `name` (or `id`: prompt variants) equals it.
    """
    node: Any = data
    for depth, segment in enumerate(path):
        where = _display(path[:depth])
        last = depth == len(path) - 1
        if isinstance(node, MutableMapping):
            if last:
                node[segment] = value
            elif segment not in node:
                if path[depth + 1].isdigit():
                    shown = _display(path[: depth + 1])
                    raise ConfigError(f"--set {text}: {shown}: no array to index")
                node[segment] = {}
            node = node[segment]
        elif isinstance(node, list):
            index = _select(node, segment, where, text)
            if last:
                node[index] = value
            node = node[index]
        else:
            raise ConfigError(f"--set {text}: {where}: is {node!r}, not a table")


def _select(items: list[Any], segment: str, where: str, text: str) -> int:
    if segment.isdigit():
        index = int(segment)
        if index >= len(items):
            raise ConfigError(
                f"--set {text}: {where}: index {index} out of range ({len(items)} items)"
            )
        return index
    for index, item in enumerate(items):
        if isinstance(item, MutableMapping) and segment in (item.get("name"), item.get("id")):
            return index
    names = ", ".join(
        str(item["name"]) for item in items if isinstance(item, MutableMapping) and "name" in item
    )
    raise ConfigError(f"--set {text}: {where}: no item named {segment!r} (names: {names or '-'})")


def _display(path: list[str]) -> str:
    shown = ""
    for segment in path:
        if segment.isdigit():
            shown += f"[{segment}]"
        else:
            shown += f".{segment}" if shown else segment
    return shown

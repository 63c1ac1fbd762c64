"""Strict cattrs structuring of raw config tables into the core's attrs classes; one-line errors.

cattrs is lenient by default (`int("7")`, a string iterated into a tuple of characters); config
files deserve the opposite, so every primitive and container is type-checked here. Errors come
back from cattrs as a tree of exception groups; `structure` flattens the tree into the first
problem as `<source>: <key path>: <message>`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, is_mapping, mapping_structure_factory
from cattrs.dispatch import StructureHook
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn

from themis.core.errors import ConfigError

__all__ = ["structure"]

T = TypeVar("T")
HookFactory = Callable[[Any, cattrs.Converter], StructureHook]


class _WrongType(Exception):
    """A value of the wrong type; the message is already user-facing."""


def structure(data: Any, cls: type[T], *, source: str, prefix: str = "") -> T:
    """`data` as a `cls`, or `ConfigError("<source>: <path>: <message>")` for the first problem.

    `prefix` is the key path of `data` inside the file (`runtime` for the runtime table).
    """
    try:
        value: T = _converter().structure(data, cls)
    except Exception as error:
        problems = _flatten(error, prefix, cls)
        path, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"{path}: " if path else ""
        raise ConfigError(_one_line(f"{source}: {where}{message}{more}")) from error
    return value


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return _short(value)


def _strict_int(value: Any, _: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _WrongType(f"expected int, got {_type_name(value)}")
    return value


def _strict_float(value: Any, _: Any) -> float:
    # NaN and infinity would later break the canonical JSON that `run_id` is hashed from.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _WrongType(f"expected a finite number, got {_type_name(value)}")
    return float(value)


def _strict_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise _WrongType(f"expected str, got {_type_name(value)}")
    return value


def _strict_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise _WrongType(f"expected true or false, got {_type_name(value)}")
    return value


def _requires(kind: type | tuple[type, ...], label: str, make: HookFactory) -> HookFactory:
    """Wrap a cattrs hook factory so a value of the wrong kind fails with a plain message."""

    def factory(cls: Any, converter: cattrs.Converter) -> StructureHook:
        inner = make(cls, converter)

        def hook(value: Any, target: Any) -> Any:
            if not isinstance(value, kind):
                raise _WrongType(f"expected {label}, got {_type_name(value)}")
            return inner(value, target)

        return hook

    return factory


def _is_homogeneous_tuple(cls: Any) -> bool:
    args = get_args(cls)
    return get_origin(cls) is tuple and len(args) == 2 and args[1] is Ellipsis


OFF = "off"  # TOML has no null: `key = "off"` unsets an optional number (e.g. call_timeout)


def _optional_number(cls: Any) -> type | None:
    """`int` or `float` when `cls` is `int | None` or `float | None`; else `None`."""
    args = set(get_args(cls))
    if get_origin(cls) in (Union, UnionType) and len(args) == 2 and type(None) in args:
        (number,) = args - {type(None)}
        if number in (int, float):
            return number  # type: ignore[no-any-return]
    return None


def _off_or_number(cls: Any, converter: cattrs.Converter) -> StructureHook:
    number = _optional_number(cls)
    strict = _strict_int if number is int else _strict_float
    label = "int" if number is int else "a finite number"

    def hook(value: Any, target: Any) -> Any:
        if value is None or value == OFF:
            return None
        try:
            return strict(value, target)
        except _WrongType:
            raise _WrongType(f'expected {label} or "{OFF}", got {_type_name(value)}') from None

    return hook


@cache
def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook_factory(
        lambda cls: _optional_number(cls) is not None, _off_or_number
    )
    converter.register_structure_hook_factory(
        is_mapping, _requires(Mapping, "a table", mapping_structure_factory)
    )
    converter.register_structure_hook_factory(
        _is_homogeneous_tuple,
        _requires((list, tuple), "an array", homogenous_tuple_structure_factory),
    )
    converter.register_structure_hook_factory(
        attrs.has, _requires(Mapping, "a table", make_dict_structure_fn)
    )
    return converter


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    if not text.replace("_", "").replace("-", "").isalnum():
        text = repr(text)
    return f"{path}.{text}" if path else text


def _flatten(error: BaseException, path: str, cls: Any) -> list[tuple[str, str]]:
    """Every leaf problem under `error` as `(key path, message)`, in cattrs' (field) order."""
    if isinstance(error, cattrs.ClassValidationError | cattrs.IterableValidationError):
        noted, bare = error.group_exceptions()
        problems: list[tuple[str, str]] = []
        for child, note in noted:
            key = note.name if isinstance(note, cattrs.AttributeValidationNote) else note.index
            problems += _flatten(child, _join(path, key), note.type)
        for child in bare:
            owner = error.cl if isinstance(error, cattrs.ClassValidationError) else cls
            problems += _flatten(child, path, owner)
        return problems or [(path, str(error))]
    if isinstance(error, ForbiddenExtraKeysError):
        known = list(attrs.fields_dict(error.cl))
        return [(_join(path, key), _unknown_key(key, known)) for key in sorted(error.extra_fields)]
    if isinstance(error, KeyError):
        return [(path, "missing required key")]
    if isinstance(error, ValueError) and attrs.has(cls):
        # Core validators say `<field>: <problem>` or `<field>.<key>: <problem>`.
        head, sep, rest = str(error).partition(":")
        if sep and head.split(".")[0] in attrs.fields_dict(cls):
            for part in head.split("."):
                path = _join(path, part)
            return [(path, rest.strip())]
    return [(path, str(error) or type(error).__name__)]


def _unknown_key(key: str, known: list[str]) -> str:
    import difflib  # (an error's: not imported by a run of a valid spec)

    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (known: {', '.join(known)})"

"""Command-line values coerced without pydantic where the answer is plain, as typer would.

typer 0.29 coerces every parameter through a pydantic `TypeAdapter`, built at the first value a
parameter processes, even an unset `None`: importing pydantic and building the adapters costs a
command about 0.15-0.2 s of CPU (issue 12: a plain `themis run` spends more on that than on
ten trials). `plain_coercion` gives each parameter a coercion that answers the common cases itself
(a string, a path, a list of strings, an enum choice, a decimal number) with typer's own helpers,
and hands anything else, and any value it cannot take, to typer's pydantic coercion, so
accepted values and error messages stay exactly typer's. `tests/cli/test_coercion.py` compares
both on every parameter type the CLI declares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, get_args, get_origin

from typer._click import Context
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path, lenient_issubclass
from typer.core import _TyperParameter

__all__ = ["PlainRuntimeParam", "plain_coercion"]

_INTEGER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DECIMAL: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


class _Unanswered(Exception):
    """A value the plain coercion leaves to typer's."""


def _number(text: str, descriptor: TypeDescriptor) -> int | float:
    info = descriptor.parameter_info
    annotation = descriptor.annotation
    pattern = _INTEGER if annotation is int else _DECIMAL
    if info.clamp or not pattern.fullmatch(text):
        raise _Unanswered
    number: int | float = int(text) if annotation is int else float(text)
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        raise _Unanswered
    return number


def _plain(value: Any, descriptor: TypeDescriptor, param: Any, ctx: Context) -> Any:
    """`value` coerced as typer would, or `_Unanswered` when typer's own coercion must say."""
    annotation: Any = descriptor.annotation
    info = descriptor.parameter_info
    if info.parser is not None or info.path_type is not None:
        raise _Unanswered
    if annotation is str and isinstance(value, str):
        return value
    if get_origin(annotation) is list and get_args(annotation) == (str,):
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return list(value)
        raise _Unanswered
    if not isinstance(value, str):
        raise _Unanswered
    if annotation is Path and value:
        return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    if lenient_issubclass(annotation, Enum):
        return coerce_cli_choice(
            value, choices=tuple(annotation), case_sensitive=info.case_sensitive, ctx=ctx
        )
    if annotation is int or annotation is float:
        return _number(value, descriptor)
    raise _Unanswered


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """typer's runtime coercion of one parameter, pydantic only for what `_plain` leaves."""

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        try:
            return _plain(value, self.descriptor, param, ctx)
        except Exception:
            typer_param = build_runtime_param(self.descriptor)
            return typer_param._coerce_value(value, param=param, ctx=ctx)


def plain_coercion(params: list[Any]) -> list[Any]:
    """`params`, each typer parameter given `PlainRuntimeParam` unless it already has one (or
    opens a file, which typer does without pydantic)."""
    for param in params:
        if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
            continue
        descriptor = param.type_descriptor
        if descriptor.file_annotation is None:  # typer opens files without pydantic
            param._runtime_param = PlainRuntimeParam(
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                descriptor=descriptor,
            )
    return params

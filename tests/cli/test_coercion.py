"""The CLI's plain coercion (`themis.app.cli.coercion`) gives every parameter the value, or the
error, typer's own pydantic coercion gives, on every parameter the CLI declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer._click import Command, Context
from typer._coercion import build_runtime_param
from typer.core import _TyperParameter

from themis.app.cli.application import app
from themis.app.cli.coercion import PlainRuntimeParam

TEXTS = ["", "x", "0", "7", "12", "-3", "007", "+4", " 7", "1_000", "1.5", "-0.25", "0.01"]
TEXTS += ["1e3", "1.", ".5", "nan", "inf", "json", "JSON", "Score", "table", "nope", "٣"]


def _parameters() -> Iterator[tuple[Command, _TyperParameter]]:
    def walk(command: Any) -> Iterator[tuple[Command, _TyperParameter]]:
        for param in command.params:
            if isinstance(param, _TyperParameter):
                yield command, param
        for child in getattr(command, "commands", {}).values():
            yield from walk(child)

    yield from walk(typer.main.get_command(app))


def _outcome(coerce: Any) -> tuple[str, Any]:
    try:
        value = coerce()
    except Exception as error:
        return ("error", (type(error).__name__, str(error)))
    return ("value", (type(value), repr(value)))  # repr: nan equals nan


def _values(tmp_path: Path) -> list[Any]:
    existing = tmp_path / "there.toml"
    existing.write_text("")
    return [
        *TEXTS,
        str(existing),
        str(tmp_path),
        str(tmp_path / "absent.duckdb"),
        ["a=1", "b=2"],
        [],
        ("x",),
        [1],
    ]


def test_plain_coercion_agrees_with_typer_on_every_parameter(tmp_path: Path) -> None:
    compared = 0
    for command, param in _parameters():
        descriptor = param.type_descriptor
        if descriptor.file_annotation is not None:
            continue
        ctx = Context(command)
        plain = PlainRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
        )
        real = build_runtime_param(descriptor)
        for value in _values(tmp_path):
            expected = _outcome(lambda: real.coerce(value, param=param, ctx=ctx))  # noqa: B023
            got = _outcome(lambda: plain.coerce(value, param=param, ctx=ctx))  # noqa: B023
            assert got == expected, (command.name, param.name, descriptor.annotation, value)
            compared += 1
    assert compared > 500  # every command's parameters were reached


@pytest.mark.parametrize("name", ["run", "report", "resume"])
def test_the_cli_gives_its_parameters_the_plain_coercion(name: str) -> None:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    params = [p for p in command.get_params(Context(command)) if isinstance(p, _TyperParameter)]
    assert params
    assert all(isinstance(p._runtime_param, PlainRuntimeParam) for p in params)

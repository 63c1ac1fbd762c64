"""Reference pages generated from the code, so the documentation cannot drift from it.

`make docs` (mkdocs, through `scripts/mkdocs_hooks.py`) replaces a `<!-- generated: NAME -->`
line in a page with `GENERATORS[NAME]()`:

- `config-fields`: every config field, its class (identity / runtime / provenance, read from
  `themis.core.identity.FIELD_CLASSES`), its type and default (read from the attrs classes) and
  its description (from `docs/reference/config-fields.toml`, which must describe every field
  and nothing else);
- `cli`: every command's `--help`, from the typer app the `themis` script runs;
- `event-kinds`: every event class of `themis.core.events.EVENT_TYPES`, with its tag and fields.

`tests/docs/test_reference.py` calls the same functions, so a field added without a
description fails the suite as well as the build.
"""

from __future__ import annotations

import importlib
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs

from themis.core.benchmark import BenchmarkSpec
from themis.core.events import EVENT_TYPES
from themis.core.identity import FIELD_CLASSES
from themis.core.project import ProjectSpec
from themis.core.runtime import RuntimeConfig
from themis.core.spec import ExperimentSpec

REPO = Path(__file__).resolve().parents[1]
DESCRIPTIONS = REPO / "docs" / "reference" / "config-fields.toml"
HELP_COLUMNS = "80"


class UndocumentedField(Exception):
    """A config field without a description, or a description of a field that does not exist."""


# ---------------------------------------------------------------------------------- config fields


# A field typed as any of these holds a list in a config file (`DatasetSpec.cases` is a
# `Sequence`: a large run keeps its cases packed, ADR 0089).
_LISTS = (tuple, list, Sequence)


def _attrs_classes(hint: Any) -> Iterator[tuple[str, type]]:
    """The attrs classes inside a field's type, each with how it nests: `list`, `table` or `one`."""
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if attrs.has(hint):
        yield "one", hint
    elif origin in _LISTS and arguments and attrs.has(arguments[0]):
        yield "list", arguments[0]
    elif origin is not None and arguments and _is_mapping(origin) and attrs.has(arguments[-1]):
        yield "table", arguments[-1]
    elif origin in (typing.Union, types.UnionType):
        for argument in arguments:
            yield from _attrs_classes(argument)


def _is_mapping(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Mapping)


def config_sections() -> list[tuple[str, str, type]]:
    """(`--set` path, TOML header, class) of every table a config file can hold, in file order,
    then those of a benchmark file (`BenchmarkSpec`) and of a project file
    (`Orchestrator.from_project_file`); a class shows once."""
    sections: list[tuple[str, str, type]] = []

    def visit(cls: type, path: str, header: str) -> None:
        if any(seen is cls for _, _, seen in sections):
            return
        sections.append((path, header, cls))
        hints = typing.get_type_hints(cls)
        for attribute in attrs.fields(cls):
            for nesting, child in _attrs_classes(hints[attribute.name]):
                name = f"{path}.{attribute.name}" if path else attribute.name
                table = (header.strip("[]") + "." if path else "") + attribute.name
                if nesting == "list":
                    item = "<name>" if "name" in attrs.fields_dict(child) else "<i>"
                    visit(child, f"{name}.{item}", f"[[{table}]]")
                elif nesting == "table":
                    visit(child, f"{name}.<key>", f"[{table}.<key>]")
                else:
                    visit(child, name, f"[{table}]")

    visit(ExperimentSpec, "", "top level")
    visit(RuntimeConfig, "runtime", "[runtime]")
    visit(BenchmarkSpec, "", "top level")
    visit(ProjectSpec, "", "project file: top level")
    return sections


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in arguments if a is not type(None)]
        optional = len(names) < len(arguments)
        return " or ".join(names) + (" (optional)" if optional else "")
    if origin in _LISTS:
        return f"list of {_type_name(arguments[0])}"
    if origin is not None and _is_mapping(origin):
        return f"table of {_type_name(arguments[-1])}"
    if attrs.has(hint):
        return "table"
    if hint is typing.Any:
        return "any"
    return getattr(hint, "__name__", str(hint))


def _literal(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, Mapping):
        return "`{}`" if not value else f"`{dict(value)}`"
    if isinstance(value, tuple):
        items = [
            f'{{ name = "{item.name}" }}' if hasattr(item, "name") else repr(item) for item in value
        ]
        return f"`[{', '.join(items)}]`"
    if attrs.has(type(value)):
        return "see below"
    return f"`{value}`"


def _default(attribute: attrs.Attribute[Any]) -> str:
    default = attribute.default
    if default is attrs.NOTHING:
        return "required"
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        return _literal(default.factory())
    return _literal(default)


def load_descriptions(path: Path = DESCRIPTIONS) -> dict[str, dict[str, str]]:
    """`{ClassName: {field: description}}` from the descriptions file."""
    with path.open("rb") as handle:
        return tomllib.load(handle)


def check_descriptions(descriptions: Mapping[str, Mapping[str, str]]) -> None:
    """Raise `UndocumentedField` unless every classified field, and only those, is described."""
    classified = {cls.__name__: set(table) for cls, table in FIELD_CLASSES.items()}
    problems = []
    for name, fields in sorted(classified.items()):
        described = set(descriptions.get(name, {}))
        problems += [f"{name}.{field} has no description" for field in sorted(fields - described)]
        problems += [f"{name}.{field} is not a field" for field in sorted(described - fields)]
    problems += [
        f"[{name}] is not a config class" for name in sorted(set(descriptions) - set(classified))
    ]
    if problems:
        raise UndocumentedField(
            f"{DESCRIPTIONS.relative_to(REPO)}: "
            + "; ".join(problems)
            + " (describe each field of themis.core.identity.FIELD_CLASSES there)"
        )


def config_fields() -> str:
    """One table per config section: field, class, type, default and description."""
    descriptions = load_descriptions()
    check_descriptions(descriptions)
    out: list[str] = []
    for path, header, cls in config_sections():
        table = FIELD_CLASSES[cls]
        hints = typing.get_type_hints(cls)
        title = "Top level" if not path else f"`{header}`"
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        where = f" (`--set {path}.FIELD=…`)" if path else " (`--set FIELD=…`)"
        if cls.__module__ == ProjectSpec.__module__:  # a project file takes no `--set`
            title, where = f"Project file: {title[0].lower()}{title[1:]}", ""
        elif cls.__module__ == BenchmarkSpec.__module__:  # a config with a [dataset] table
            title = f"Benchmark file: {title[0].lower()}{title[1:]}"
        out += [f"### {title}", ""]
        out += [f"{doc}{where}", "", "| field | class | type | default | description |"]
        out += ["|---|---|---|---|---|"]
        for attribute in attrs.fields(cls):
            field_class = table[attribute.name]
            description = descriptions[cls.__name__][attribute.name].strip().replace("\n", " ")
            out.append(
                f"| `{attribute.name}` | {field_class.value} | {_type_name(hints[attribute.name])} "
                f"| {_default(attribute)} | {description} |"
            )
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------- CLI


def cli_app() -> Any:
    """The typer app behind the installed `themis` script."""
    (script,) = entry_points(group="console_scripts", name="themis")
    module = importlib.import_module(script.module)
    return module.app


def _commands(group: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


def cli() -> str:
    """Every command's `--help`, as an 80-column terminal shows it."""
    import typer
    from typer.testing import CliRunner

    app = cli_app()
    runner = CliRunner()
    env = {"COLUMNS": HELP_COLUMNS, "NO_COLOR": "1", "TERM": "dumb"}
    out: list[str] = []
    for path in [(), *_commands(typer.main.get_command(app), ())]:
        result = runner.invoke(app, [*path, "--help"], env=env, color=False)
        if result.exit_code != 0:
            raise RuntimeError(f"themis {' '.join(path)} --help exited {result.exit_code}")
        text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        out += [
            f"### `themis{''.join(' ' + part for part in path)}`",
            "",
            "```text",
            text.strip("\n"),
            "```",
            "",
        ]
    return "\n".join(out)


# -------------------------------------------------------------------------------------- events


def event_kinds() -> str:
    """A table of the event classes: tag, stage, schema version, fields and what each records."""
    out = ["| kind | class | stage | fields | what it records |", "|---|---|---|---|---|"]
    for cls in EVENT_TYPES:
        fields = ", ".join(f"`{attribute.name}`" for attribute in attrs.fields(cls))
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        stage = cls.stage.value if cls.stage is not None else "—"
        out.append(f"| `{cls.kind}` | `{cls.__name__}` | {stage} | {fields} | {doc} |")
    return "\n".join(out) + "\n"


GENERATORS: Mapping[str, Callable[[], str]] = {
    "config-fields": config_fields,
    "cli": cli,
    "event-kinds": event_kinds,
}

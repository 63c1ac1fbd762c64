"""The generated reference sections cover the code: every config field, command and event."""

from __future__ import annotations

import attrs
import pytest
import typer

from scripts.docs_reference import (
    UndocumentedField,
    check_descriptions,
    cli,
    cli_app,
    config_fields,
    config_sections,
    event_kinds,
    load_descriptions,
)
from themis.core.events import EVENT_TYPES
from themis.core.identity import FIELD_CLASSES


def test_every_classified_class_has_a_section() -> None:
    assert {cls for _, _, cls in config_sections()} == set(FIELD_CLASSES)


def test_every_config_field_is_described_with_its_class() -> None:
    reference = config_fields()

    for cls, table in FIELD_CLASSES.items():
        for field in attrs.fields(cls):
            assert f"| `{field.name}` | {table[field.name].value} |" in reference, (cls, field)
    assert "| `seed` | identity | int | required |" in reference
    assert "| `max_concurrent_tasks` | runtime | int | `32` |" in reference
    assert "| `path` | provenance | str (optional) | unset |" in reference


def test_a_field_without_a_description_fails_the_build() -> None:
    descriptions = load_descriptions()
    del descriptions["RuntimeConfig"]["call_timeout"]
    descriptions["Price"]["per_token"] = "a field that does not exist"

    with pytest.raises(UndocumentedField) as refused:
        check_descriptions(descriptions)
    assert "RuntimeConfig.call_timeout has no description" in str(refused.value)
    assert "Price.per_token is not a field" in str(refused.value)


def test_every_command_has_its_help() -> None:
    reference = cli()
    group = typer.main.get_command(cli_app())
    names = list(group.commands)  # type: ignore[attr-defined]

    assert "### `themis`" in reference
    for name in names:
        assert f"### `themis {name}`" in reference
        assert f"Usage: themis {name}" in reference
    assert "### `themis inspect state`" in reference


def test_every_event_kind_is_listed() -> None:
    table = event_kinds()
    for cls in EVENT_TYPES:
        assert f"| `{cls.kind}` | `{cls.__name__}` |" in table

"""Small attrs validators whose messages name the offending value, and the did-you-mean hint
every check of a name uses (`unknown_name`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs


def check_non_empty(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name}: must be a non-empty string, got {value!r}")


def check_positive_int(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name}: must be an integer >= 1, got {value!r}")


def check_non_negative_int(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name}: must be an integer >= 0, got {value!r}")


def check_bool(instance: Any, attribute: attrs.Attribute[Any], value: bool) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name}: must be true or false, got {value!r}")


def check_non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{attribute.name}: must be a number >= 0, got {value!r}")


def close_name(value: str, known: Iterable[str]) -> str | None:
    """The known name `value` is most likely a misspelling of, if any is close."""
    import difflib  # (an error's: not imported by a run of a valid spec)

    close = difflib.get_close_matches(value, list(known), n=1) if isinstance(value, str) else []
    return close[0] if close else None


def unknown_name(kind: str, value: str, known: Iterable[str]) -> str:
    """`no <kind> is named 'x' (did you mean 'y'?)`, or the known names when none is close."""
    names = sorted(set(known))
    close = close_name(value, names)
    if close is not None:
        hint = f"did you mean {close!r}?"
    elif names:
        hint = "known: " + ", ".join(repr(name) for name in names[:10])
        hint += ", ..." if len(names) > 10 else ""
    else:
        hint = f"there is no {kind}"
    return f"no {kind} is named {value!r} ({hint})"


def check_choice(choices: Iterable[str]) -> Callable[[Any, attrs.Attribute[Any], str], None]:
    allowed = tuple(choices)

    def check(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in allowed:
            close = close_name(value, allowed)
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ValueError(
                f"{attribute.name}: must be one of {', '.join(allowed)}; got {value!r}{hint}"
            )

    return check


def check_builtin_or_plugin(
    choices: Iterable[str],
) -> Callable[[Any, attrs.Attribute[Any], str], None]:
    """A built-in name from `choices`, or a plugin's (dotted or `module:attr`, checked when the
    config compiles against the plugins found)."""
    builtin = check_choice(choices)

    def check(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if isinstance(value, str) and ("." in value or ":" in value):
            return
        try:
            builtin(instance, attribute, value)
        except ValueError as error:
            if "did you mean" in str(error):
                raise
            raise ValueError(f"{error}; or a plugin ('module:attr' or a dotted name)") from None

    return check


def check_unique(label: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{label}: name {name!r} is used twice")
        seen.add(name)


def check_optional_positive_int(
    instance: Any, attribute: attrs.Attribute[Any], value: int | None
) -> None:
    if value is not None:
        check_positive_int(instance, attribute, value)


def check_optional_non_negative_int(
    instance: Any, attribute: attrs.Attribute[Any], value: int | None
) -> None:
    if value is not None:
        check_non_negative_int(instance, attribute, value)


# The most choices a multiple-choice item has: the letters A to Z (`themis.core.choice_grammar`
# reads them; a check needs only the bound, not the grammar's patterns).
MAX_CHOICES = 26


def check_optional_choice_count(
    instance: Any, attribute: attrs.Attribute[Any], value: int | None
) -> None:
    """A multiple-choice item has 2 to `MAX_CHOICES` choices (the letters A to Z)."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= MAX_CHOICES
    ):
        raise ValueError(
            f"{attribute.name}: must be an integer from 2 to {MAX_CHOICES}, got {value!r}"
        )


def check_optional_choice(
    choices: Iterable[str],
) -> Callable[[Any, attrs.Attribute[Any], str | None], None]:
    check = check_choice(choices)

    def check_optional(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None:
            check(instance, attribute, value)

    return check_optional


# Value types that are JSON whatever their value (a float may be infinite, so it is not one).
_PLAIN = frozenset({str, int, bool, type(None)})
_STR = frozenset({str})


def check_json(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Free-form values must be plain JSON (finite numbers, string keys): they are hashed."""
    plain = (
        type(value) is dict
        and _STR.issuperset(map(type, value))
        and _PLAIN.issuperset(map(type, value.values()))
    )
    if plain:
        return  # the usual dataset row, checked at C speed (a case per row: issue 12)
    problem = _json_problem(value)
    if problem is not None:
        raise ValueError(f"{attribute.name}: {problem}")


def _json_problem(value: Any, where: str = "") -> str | None:
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return (
            None
            if math.isfinite(value)
            else f"{where or 'value'} must be a finite number, got {value!r}"
        )
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _json_problem(item, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where or 'value'} has a non-string key {key!r}"
            problem = _json_problem(item, f"{where}.{key}" if where else key)
            if problem:
                return problem
        return None
    return f"{where or 'value'} must be JSON data, got {type(value).__name__}"

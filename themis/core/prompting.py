"""Rendering prompt variants for a case: Jinja2 templates, strict about missing fields.

Rendering is pure computation, so it lives in the core (ADR-0001 allows jinja2 here).
"""

from __future__ import annotations

import keyword
import re
from functools import lru_cache
from itertools import starmap
from typing import TYPE_CHECKING, Any

from attrs import frozen

from themis.core.identity import digest
from themis.core.spec import Case, FewShotSpec, PromptSpec

if TYPE_CHECKING:
    import jinja2

EXAMPLES = "examples"  # the template variable few-shot examples are given as


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    """The one Jinja2 environment, built (and jinja2 imported) at the first template: reading
    a store never renders a prompt, and need not pay for the import."""
    import jinja2

    return jinja2.Environment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


@frozen
class Message:
    """One chat message of a rendered request."""

    role: str
    content: str


class PromptError(ValueError):
    """A prompt template that cannot render (bad syntax, or a field the cases do not have)."""


@lru_cache(maxsize=256)
def _template(source: str) -> jinja2.Template:
    return _env().from_string(source)


# `{{ name }}` (plain ASCII name, blanks only) and the text around it, read without Jinja2.
_PLAIN_NAME = re.compile(r"\{\{[ \t\n]*([A-Za-z_][A-Za-z0-9_]*)[ \t\n]*\}\}")
_SYNTAX = re.compile(r"\{[{%#]|\r")  # any other Jinja2 syntax, or a newline it would rewrite
# Names Jinja2 reads as constants, operators or its own, and its default globals: left to it.
_JINJA_NAMES = ("true", "false", "none", "self", "loop", "caller", "varargs", "kwargs")
_JINJA_GLOBALS = ("range", "dict", "lipsum", "cycler", "joiner", "namespace")
_NOT_FIELDS = frozenset((*keyword.kwlist, *keyword.softkwlist, *_JINJA_NAMES, *_JINJA_GLOBALS))


def _plain_substitutions(source: str) -> tuple[tuple[bool, str], ...] | None:
    """`_substitutions` of a template that is only text and `{{ name }}`s, found without
    importing or running Jinja2 (~50 ms of import); `None` for anything else (a test compares
    both readings)."""
    parts: list[tuple[bool, str]] = []
    at = 0
    for match in _PLAIN_NAME.finditer(source):
        text, name = source[at : match.start()], match.group(1)
        if _SYNTAX.search(text) or text.endswith("{") or name in _NOT_FIELDS:  # "{" + "{{"
            return None
        if text:
            parts.append((True, text))
        parts.append((False, name))
        at = match.end()
    rest = source[at:]
    if _SYNTAX.search(rest):
        return None
    if rest:
        parts.append((True, rest))
    return tuple(parts)


@lru_cache(maxsize=256)
def _substitutions(source: str) -> tuple[tuple[bool, str], ...] | None:
    """A template that is only text and `{{ name }}`s as `(is_text, text or name)` parts; else
    `None`. Jinja2 renders a `{{ name }}` as `str(value)` here (no autoescape, no finalize), so
    joining the parts gives its output at a tenth of the cost of a Jinja2 render."""
    plain = _plain_substitutions(source)
    if plain is not None:
        return plain
    import jinja2
    from jinja2 import nodes

    try:
        body = _env().parse(source).body
    except jinja2.TemplateSyntaxError:
        return None
    parts: list[tuple[bool, str]] = []
    for node in body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((True, child.data))
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                parts.append((False, child.name))
            else:
                return None
    return tuple(parts)


def _render(source: str, variables: dict[str, Any]) -> str:
    parts = _substitutions(source)
    if parts is not None:
        try:
            return "".join([text if literal else str(variables[text]) for literal, text in parts])
        except KeyError:
            pass  # an environment global, or undefined: Jinja2 renders or names it
    return _template(source).render(variables)


def renders_visibly_with_its_fields(prompt: PromptSpec) -> bool:
    """Whether `prompt` renders, and to visible text, for every case that holds the fields it
    names (`template_fields`), whatever their values: its template and system message are only
    text and `{{ name }}`s, each with visible text of its own, and it has no few-shot examples.
    The compile-time check then renders no case that holds them (ADR 0074)."""
    return visible_through_fields(prompt) == ()


def visible_through_fields(prompt: PromptSpec) -> tuple[tuple[str, ...], ...] | None:
    """For a prompt whose template and system message are only text and `{{ name }}`s, without
    few-shot examples: the names each of them without visible text of its own shows (`()`
    when both have some). Such a prompt renders, for a case holding its fields, each name as
    `str(value)`, so visibly exactly when, for each of these, one of its names' values renders
    visibly (a string that is not blank, say: ADR 0086). `None` for any other prompt."""
    if prompt.few_shot is not None:
        return None
    needing: list[tuple[str, ...]] = []
    for source in (prompt.template, prompt.system) if prompt.system else (prompt.template,):
        parts = _plain_substitutions(source)
        if parts is None:
            return None
        if not any(literal and text.strip() for literal, text in parts):
            needing.append(tuple(text for literal, text in parts if not literal))
    return tuple(needing)


def template_fields(prompt: PromptSpec) -> frozenset[str]:
    """The case fields a prompt variant refers to (template and system message); Jinja2's
    globals (`range`, `dict`, ...) are not fields."""
    given = {EXAMPLES} if prompt.few_shot is not None else set()
    names: set[str] = set()
    sources = (prompt.template, prompt.system or "")
    plain = [_plain_substitutions(source) for source in sources]
    if all(parts is not None for parts in plain):  # Jinja2 need not be imported
        for parts in plain:
            names.update(text for literal, text in parts or () if not literal)
        return frozenset(names - given)
    import jinja2
    from jinja2 import meta

    for source in sources:
        try:
            names |= meta.find_undeclared_variables(_env().parse(source))
        except jinja2.TemplateSyntaxError as error:
            raise PromptError(
                f"prompt {prompt.name!r}: template syntax error: {error.message}"
            ) from error
    return frozenset(names - _env().globals.keys() - given)


@lru_cache(maxsize=16)
def _ranked(seed: int, ids: tuple[str, ...]) -> tuple[int, ...]:
    """The examples' indices in the order `seed` shuffles them to (once per examples set)."""
    return tuple(sorted(range(len(ids)), key=lambda index: digest([seed, ids[index]])))


def few_shot_examples(few_shot: FewShotSpec, case: Case) -> list[dict[str, Any]]:
    """The `k` examples `case` is shown: a window of the seeded shuffle of the examples, starting
    at a place drawn from the case's id, skipping the case itself (the same split)."""
    pool = few_shot.examples.cases
    order = _ranked(few_shot.seed, tuple(example.id for example in pool))
    if not order:
        return []
    start = int(digest([few_shot.seed, case.id])[:8], 16) % len(order)
    chosen: list[dict[str, Any]] = []
    for step in range(len(order)):
        example = pool[order[(start + step) % len(order)]]
        if example.id == case.id:
            continue
        chosen.append({**example.fields, "id": example.id, "expected": example.expected})
        if len(chosen) == few_shot.k:
            break
    return chosen


def render(prompt: PromptSpec, case: Case) -> tuple[Message, ...]:
    """The messages for `case` under `prompt`: an optional system message, then the user turn."""
    return tuple(starmap(Message, rendered_texts(prompt, case)))


def rendered_texts(prompt: PromptSpec, case: Case) -> tuple[tuple[str, str], ...]:
    """`render`'s messages as `(role, content)` pairs, without building `Message`s: a replay
    needs only the texts, for the trial key (ADR 0093)."""
    variables = dict(case.fields)
    variables.setdefault("id", case.id)
    if prompt.few_shot is not None:
        variables[EXAMPLES] = few_shot_examples(prompt.few_shot, case)
    try:
        user = ("user", _render(prompt.template, variables))
        if not prompt.system:
            return (user,)
        return (("system", _render(prompt.system, variables)), user)
    except Exception as error:  # a template may raise anything: `{{ 1 // 0 }}`, `{{ x + 1 }}`
        raise PromptError(f"prompt {prompt.name!r}, case {case.id!r}: {_why(error)}") from error


def _why(error: Exception) -> str:
    """One line saying why a render failed; Jinja2's own errors already read as sentences."""
    import jinja2

    text = " ".join(str(error).split())
    if isinstance(error, jinja2.TemplateError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

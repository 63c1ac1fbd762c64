"""Prompt rendering: the fast path for plain `{{ name }}` templates equals Jinja2's output."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import meta

from themis.core.prompting import (
    _NOT_FIELDS,
    PromptError,
    _plain_substitutions,
    _substitutions,
    render,
    renders_visibly_with_its_fields,
    template_fields,
    visible_through_fields,
)
from themis.core.spec import Case, PromptSpec

JINJA = jinja2.Environment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
texts = st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=20)


@given(
    before=texts,
    between=texts,
    after=texts,
    a=values,
    b=values,
)
def test_a_plain_template_renders_as_jinja2_does(
    before: str, between: str, after: str, a: Any, b: Any
) -> None:
    template = f"{before}{{{{ a }}}}{between}{{{{b}}}}{after}"
    assert _substitutions(template) is not None
    case = Case(id="c", fields={"a": a, "b": b})
    (message,) = render(PromptSpec(name="p", template=template), case)
    assert message.content == JINJA.from_string(template).render(a=a, b=b, id="c")


def _two_field_prompt(
    template: tuple[str, str, str], system: tuple[str, str] | None, system_field: str
) -> PromptSpec:
    """A prompt showing `a` and `b` between `template`'s texts, and `system_field` between
    `system`'s."""
    return PromptSpec(
        name="p",
        template=f"{template[0]}{{{{ a }}}}{template[1]}{{{{ b }}}}{template[2]}",
        system=None if system is None else f"{system[0]}{{{{ {system_field} }}}}{system[1]}",
    )


@given(
    template=st.tuples(texts, texts, texts),
    system=st.none() | st.tuples(texts, texts),
    a=values,
    b=values,
)
def test_a_prompt_said_to_render_visibly_does_for_any_values_of_its_fields(
    template: tuple[str, str, str], system: tuple[str, str] | None, a: Any, b: Any
) -> None:
    # What lets the compile-time check skip rendering such a prompt for each case (ADR 0074).
    prompt = _two_field_prompt(template, system, "a")
    if not renders_visibly_with_its_fields(prompt):
        return
    messages = render(prompt, Case(id="c", fields={"a": a, "b": b}))
    assert all(message.content.strip() for message in messages)


@given(
    template=st.tuples(texts, texts, texts),
    system=st.none() | st.tuples(texts, texts),
    a=values,
    b=values,
)
def test_a_plain_prompt_renders_visibly_when_a_shown_value_is_a_visible_string(
    template: tuple[str, str, str], system: tuple[str, str] | None, a: Any, b: Any
) -> None:
    # What lets the compile-time check skip rendering a case of a bare `{{ a }}` (ADR 0086).
    prompt = _two_field_prompt(template, system, "b")
    through = visible_through_fields(prompt)
    if through is None:  # e.g. a "\r", which Jinja2 reads as a line's end
        return
    fields = {"a": a, "b": b}
    messages = render(prompt, Case(id="c", fields=fields))
    for names in through:
        assert names in (("a", "b"), ("b",))
    shown = [message.content for message in messages if not _has_visible_text(message, prompt)]
    assert len(shown) == len(through)
    for content, names in zip(shown, through, strict=True):
        if any(type(fields[name]) is str and fields[name].strip() for name in names):
            assert content.strip()
        elif all(type(fields[name]) is str for name in names):
            assert not content.strip()  # every value blank: the check renders it and says so


def _has_visible_text(message: Any, prompt: PromptSpec) -> bool:
    """Whether the source `message` was rendered from has visible text of its own."""
    source = prompt.system if message.role == "system" else prompt.template
    assert source is not None
    return bool(source.replace("{{ a }}", "").replace("{{ b }}", "").strip())


def test_what_a_plain_prompt_needs_visible_from_its_fields() -> None:
    assert visible_through_fields(PromptSpec(name="p", template="What is {{ a }}?")) == ()
    assert visible_through_fields(PromptSpec(name="p", template="{{ a }} {{ b }}")) == (("a", "b"),)
    prompt = PromptSpec(name="p", template="{{ a }}", system="Be {{ tone }}.")
    assert visible_through_fields(prompt) == (("a",),)
    prompt = PromptSpec(name="p", template="Q: {{ a }}", system="{{ tone }}")
    assert visible_through_fields(prompt) == (("tone",),)
    assert visible_through_fields(PromptSpec(name="p", template="{{ a | upper }}")) is None


@pytest.mark.parametrize(
    ("template", "system", "visibly"),
    [
        ("What is {{ a }}?", None, True),
        ("What is {{ a }}?", "Be {{ tone }}.", True),
        ("{{ a }}", None, False),  # only fields: empty when they are
        ("What is {{ a }}?", "{{ tone }}", False),
        ("What is {{ a | upper }}?", None, False),  # Jinja2 renders it
        ("{{ range(2) | list }}!", None, False),
    ],
)
def test_only_plain_prompts_with_visible_text_render_visibly_whatever_the_fields(
    template: str, system: str | None, visibly: bool
) -> None:
    prompt = PromptSpec(name="p", template=template, system=system)
    assert renders_visibly_with_its_fields(prompt) is visibly


@pytest.mark.parametrize(
    "template",
    [
        "{{ a | upper }}",
        "{% if a %}yes{% endif %}",
        "{{ a[0] }}",
        "{{ a }}{# note #}\r\nline\n",
        "{% raw %}{{ a }}{% endraw %} {{ a }}",
        "{{ range(2) | list }} {{ id }}",
    ],
)
def test_every_other_template_still_renders_as_jinja2_does(template: str) -> None:
    case = Case(id="c", fields={"a": "x"})
    (message,) = render(PromptSpec(name="p", template=template), case)
    assert message.content == JINJA.from_string(template).render(a="x", id="c")


def test_a_name_that_is_an_environment_global_renders_as_jinja2_does() -> None:
    case = Case(id="c", fields={})
    (message,) = render(PromptSpec(name="p", template="{{ range }}"), case)
    assert message.content == JINJA.from_string("{{ range }}").render(id="c")


def test_an_undefined_field_names_the_prompt_the_case_and_the_field() -> None:
    with pytest.raises(PromptError, match=r"prompt 'p', case 'c0': 'missing' is undefined"):
        render(PromptSpec(name="p", template="Hi {{ missing }}"), Case(id="c0", fields={}))


def test_the_system_message_takes_the_fast_path_too() -> None:
    prompt = PromptSpec(name="p", template="{{ q }}", system="You are {{ role }}.")
    messages = render(prompt, Case(id="c", fields={"q": "2+2?", "role": "terse"}))
    assert [(m.role, m.content) for m in messages] == [
        ("system", "You are terse."),
        ("user", "2+2?"),
    ]


def _jinja_parts(source: str) -> tuple[tuple[bool, str], ...] | None:
    """What Jinja2's own parse says of a template: text and `{{ name }}`s only, or `None`."""
    try:
        body = JINJA.parse(source).body
    except jinja2.TemplateSyntaxError:
        return None
    parts: list[tuple[bool, str]] = []
    for node in body:
        if not isinstance(node, jinja2.nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, jinja2.nodes.TemplateData):
                parts.append((True, child.data))
            elif isinstance(child, jinja2.nodes.Name) and child.ctx == "load":
                parts.append((False, child.name))
            else:
                return None
    return tuple(parts)


_PIECES = st.sampled_from(
    [
        *("{{", "}}", "{%", "%}", "{#", "#}", "{", "}", "-", " ", "\n", "\r", "\t", "a", "b_1"),
        *("x ", "true", "none", "not", "range", "loop", "self", "match", "é", "|", "(", "0"),
    ]
)


@given(pieces=st.lists(_PIECES, max_size=12))
def test_the_plain_reading_is_jinja2s_wherever_it_reads_one(pieces: list[str]) -> None:
    source = "".join(pieces)
    plain = _plain_substitutions(source)
    if plain is not None:
        assert plain == _jinja_parts(source)


@given(pieces=st.lists(_PIECES, max_size=12))
def test_template_fields_without_jinja2_are_jinja2s(pieces: list[str]) -> None:
    source = "Q " + "".join(pieces)
    prompt = PromptSpec(name="p", template=source, system="Be {{ tone }}.")
    try:
        expected = meta.find_undeclared_variables(JINJA.parse(source)) | {"tone"}
    except jinja2.TemplateSyntaxError:
        with pytest.raises(PromptError):
            template_fields(prompt)
        return
    assert template_fields(prompt) == frozenset(expected - JINJA.globals.keys())


def test_the_names_left_to_jinja2_include_its_globals() -> None:
    assert set(JINJA.globals) <= _NOT_FIELDS
    assert _plain_substitutions("{{{a}}") is None  # Jinja2 reads "{{" + "{a}}": a syntax error
    assert _plain_substitutions("Q: {{ question }}\nA:") == (
        (True, "Q: "),
        (False, "question"),
        (True, "\nA:"),
    )

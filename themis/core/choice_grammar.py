"""The `choice` parser's grammar: which letter a response chose among an item's `count` choices.

The grammar is the data in `RULES`, tried in order; the first rule that finds any letter decides.
Within that rule every letter found must be the same one (else the answer is ambiguous and left
unparsed, with the letters named), and it must be one of the item's choices (`A` up to the
`count`-th letter; a letter beyond them is refused, never skipped in favour of another).

Before matching, Markdown emphasis and code marks (`*`, `_` around a letter, `` ` ``) and `$`
are removed, so `**A**`, `` `B` `` and `$C$` read as plain letters. A bare letter is read only
upper case and only where it cannot be a word: followed by punctuation or the end of the line
(after an answer marker), or alone on its line, or opening an option line (`A) ...`), or last in
the text. Lower case is read only enclosed (`(a)`, `[a]`), in `\\boxed{a}`, or alone after
`Answer:`. So "The answer is a dog." reads nothing and "The answer is: I think it is C" reads C.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attrs import frozen
from returns.result import Failure, Result, Success

from themis.core.validation import MAX_CHOICES

# After a bare letter: punctuation, or the end of the line. Never a space and another word, which
# is how "I think", "A dog" and "Vitamin D matters" are told from an answer.
_END = r"(?=[.,;:!?)\]]|[ \t]*$)"
_MARKER = (
    r"(?i:\b(?:final[ \t]+|correct[ \t]+|best[ \t]+)?answer"
    r"(?:[ \t]+(?:is|would[ \t]+be|should[ \t]+be|will[ \t]+be))?)"
    r"[ \t]*(?::[ \t]*)?(?:(?i:option|choice|letter)[ \t]+)?"
)
_ENCLOSED = r"[(\[]([A-Za-z])[)\]]"
_VERDICT = r"[ \t]+is[ \t]+(?:the[ \t]+)?(?i:correct|right|best)\b"


@frozen
class Rule:
    """One level of the grammar: a name for reasons and docs, and its alternative patterns.

    Every pattern has exactly one group, the letter; patterns are compiled with `re.MULTILINE`,
    so `^` and `$` are the ends of a line.
    """

    name: str
    forms: str
    patterns: tuple[str, ...]


RULES: tuple[Rule, ...] = (
    Rule(
        name="marked",
        forms='"Answer: A", "ANSWER: A", "The answer is A.", "Final answer: (b)", "\\boxed{C}"',
        patterns=(
            _MARKER + _ENCLOSED,
            _MARKER + r"([A-Z])" + _END,
            r"(?i:\banswer)[ \t]*:[ \t]*([a-z])[ \t]*\.?[ \t]*$",
            r"\\boxed\{[ \t]*([A-Za-z])[ \t]*\}",
        ),
    ),
    Rule(
        name="named",
        forms='"Option A is correct", "choice (B)", "C is the correct one", "(d) is right"',
        patterns=(
            r"(?i:\b(?:option|choice))[ \t]+" + _ENCLOSED,
            r"(?i:\b(?:option|choice))[ \t]+([A-Z])(?=[.,;:!?)\]]|[ \t]*$|[ \t]+is\b)",
            r"(?<![\w'])([A-Z])" + _VERDICT,
            r"(?<![\w'])" + _ENCLOSED + _VERDICT,
        ),
    ),
    Rule(
        name="line",
        forms='a line that is "A", "A.", "A)", "(A)", "[A]"; or starts "A) ..", "A. ..", "A: .."',
        patterns=(
            r"^[ \t]*[(\[]?([A-Z])[)\]]?[.:)]?[ \t]*$",
            r"^[ \t]*([A-Z])[.:)][ \t]+\S",
        ),
    ),
    Rule(
        name="enclosed",
        forms='"(A)" or "[a]" anywhere, after a space or at the start',
        patterns=(r"(?<!\w)" + _ENCLOSED,),
    ),
    Rule(
        name="last",
        forms='the last word of the text is a lone capital letter: "..., so A", "... is B."',
        patterns=(r"(?<![\w'])(?<!\bor\s)(?<!\band\s)([A-Z])[.)!\]]*\s*\Z",),
    ),
)

_COMPILED = tuple(
    (rule.name, tuple(re.compile(pattern, re.MULTILINE) for pattern in rule.patterns))
    for rule in RULES
)
_MARKUP = re.compile(r"[*`$]|(?<!\w)_+|_+(?!\w)")


def letters(count: int) -> str:
    """The letters of `count` choices: `letters(4) == "ABCD"`."""
    return "".join(chr(ord("A") + index) for index in range(count))


def _found(patterns: Sequence[re.Pattern[str]], text: str) -> list[str]:
    return [match.group(1).upper() for pattern in patterns for match in pattern.finditer(text)]


def _decide(text: str) -> tuple[str, list[str]] | None:
    plain = _MARKUP.sub("", text)
    for name, patterns in _COMPILED:
        found = sorted(set(_found(patterns, plain)))
        if found:
            return name, found
    return None


def deciding_rule(text: str) -> str | None:
    """The name of the first rule that finds a letter in `text`, or `None`."""
    decided = _decide(text)
    return None if decided is None else decided[0]


def parse_choice(text: str, count: int) -> Result[str, str]:
    """The letter `text` chose among `count` choices, or why none can be read (module docstring)."""
    if not 2 <= count <= MAX_CHOICES:
        return Failure(f"the number of choices must be 2..{MAX_CHOICES}, got {count}")
    valid = letters(count)
    decided = _decide(text)
    if decided is not None:
        name, found = decided
        if len(found) > 1:
            return Failure(f"ambiguous: reads {' and '.join(found)} ({name} rule)")
        letter = found[0]
        if letter not in valid:
            return Failure(f"{letter} is not one of the {count} choices {valid[0]}-{valid[-1]}")
        return Success(letter)
    return Failure("no choice letter in response")

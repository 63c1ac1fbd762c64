"""Counting prompt tokens without a tokenizer, and the preflight check against a context window.

The core cannot ship a real tokenizer: it must stay pure, and tiktoken downloads its BPE files on
first use, which an offline machine cannot do. So the core counts with a declared heuristic,
`TOKENIZER`, and says so. Every estimate and preflight result records the counter's name
(`TOKENIZER_ASSUMPTION` states the rule). An adapter may offer a real tokenizer later, under
its own name.

The rule: a text is `ceil(len(text) / 4)` tokens, which is about right for English prose on
current BPE vocabularies. A chat request adds `MESSAGE_OVERHEAD` per message (role and
delimiters) and `REQUEST_OVERHEAD` per request (the reply's priming), as OpenAI's chat format
does.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from attrs import frozen

from themis.core.prompting import Message

TOKENIZER = "heuristic-chars/4-v1"
MESSAGE_OVERHEAD = 4
REQUEST_OVERHEAD = 3
TOKENIZER_ASSUMPTION = (
    f"{TOKENIZER}: ceil(characters / 4) per message, plus {MESSAGE_OVERHEAD} per message and "
    f"{REQUEST_OVERHEAD} per request"
)
PREFLIGHT = "preflight"


def count_text(text: str) -> int:
    """The heuristic token count of `text`: a quarter of its characters, rounded up."""
    return -(-len(text) // 4)


def count_messages(messages: Iterable[Message]) -> int:
    """The heuristic token count of a chat request made of `messages`."""
    return REQUEST_OVERHEAD + sum(
        MESSAGE_OVERHEAD + count_text(message.content) for message in messages
    )


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@frozen
class Preflight:
    """The check of one request against its model's context window.

    `share` is (prompt + max_tokens) / window, or `None` when the window is unknown. On `fail`,
    `reason` is `"preflight"` and no call may be made.
    """

    verdict: Verdict
    required_tokens: int
    context_window: int | None = None
    share: float | None = None
    reason: str | None = None
    tokenizer: str = TOKENIZER


def preflight(
    prompt_tokens: int,
    max_tokens: int,
    context_window: int | None,
    warning_threshold: float | None,
    error_threshold: float | None,
) -> Preflight:
    """Check that a prompt and its `max_tokens` fit the model's context window.

    The request needs `prompt_tokens + max_tokens` of the window. Above `error_threshold` of the
    window it fails, above `warning_threshold` it warns. An unknown window, or a threshold of
    `None`, skips that check. Being exactly at a threshold is not above it.
    """
    required = prompt_tokens + max_tokens
    if context_window is None:
        return Preflight(Verdict.OK, required)
    share = required / context_window
    if error_threshold is not None and share > error_threshold:
        return Preflight(Verdict.FAIL, required, context_window, share, PREFLIGHT)
    if warning_threshold is not None and share > warning_threshold:
        return Preflight(Verdict.WARN, required, context_window, share)
    return Preflight(Verdict.OK, required, context_window, share)

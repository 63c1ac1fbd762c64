"""The declared token heuristic and the preflight check against a context window."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.prompting import Message
from themis.core.tokens import (
    PREFLIGHT,
    TOKENIZER,
    TOKENIZER_ASSUMPTION,
    Verdict,
    count_messages,
    count_text,
    preflight,
)


def test_the_heuristic_is_named_and_states_its_rule() -> None:
    assert TOKENIZER == "heuristic-chars/4-v1"
    assert TOKENIZER in TOKENIZER_ASSUMPTION
    assert "ceil(characters / 4)" in TOKENIZER_ASSUMPTION


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2)])
def test_count_text(text: str, tokens: int) -> None:
    assert count_text(text) == tokens


@given(st.text(), st.text())
def test_count_text_is_a_rounded_up_quarter(left: str, right: str) -> None:
    assert count_text(left) == math.ceil(len(left) / 4)
    assert count_text(left + right) <= count_text(left) + count_text(right)


def test_count_messages_adds_the_chat_overheads() -> None:
    assert count_messages([]) == 3
    messages = (Message("system", "Be brief."), Message("user", "What is 1 plus 2?"))
    assert count_messages(messages) == 3 + (4 + 3) + (4 + 5)


# --- preflight --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "verdict"),
    [(100, Verdict.OK), (700, Verdict.OK), (701, Verdict.WARN), (900, Verdict.WARN), (901, "fail")],
)
def test_preflight_thresholds_are_shares_of_the_window(prompt: int, verdict: str) -> None:
    result = preflight(prompt, 100, 1000, 0.8, 1.0)
    assert result.verdict == verdict
    assert result.required_tokens == prompt + 100
    assert result.share == pytest.approx((prompt + 100) / 1000)
    assert result.reason == (PREFLIGHT if verdict == "fail" else None)
    assert result.tokenizer == TOKENIZER


def test_a_failing_preflight_names_its_reason() -> None:
    result = preflight(5000, 256, 4096, 0.8, 1.0)
    assert (result.verdict, result.reason, result.context_window) == ("fail", "preflight", 4096)


def test_an_unknown_window_or_an_unset_threshold_skips_the_check() -> None:
    assert preflight(10**9, 256, None, 0.8, 1.0).verdict is Verdict.OK
    assert preflight(10**9, 256, None, 0.8, 1.0).share is None
    assert preflight(2000, 0, 1000, 0.8, None).verdict is Verdict.WARN
    assert preflight(2000, 0, 1000, None, None).verdict is Verdict.OK


def test_an_error_threshold_below_one_leaves_headroom() -> None:
    assert preflight(850, 100, 1000, 0.5, 0.9).verdict is Verdict.FAIL

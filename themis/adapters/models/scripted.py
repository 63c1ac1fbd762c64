"""The built-in `fake` provider: a scripted model, deterministic from the seed and trial key.

It answers right with probability `skill` (reading the request's `reference`, which real
adapters never send), fails with probability `failure_rate`, and takes `latency_s` of clock time
(virtual under trio's MockClock). Its answer is the 4 words "The answer is X."; with
`max_tokens` below 4 (a word per token) it is cut there, with `finish_reason = "length"`, as a
real model's answer is. With `answer_field`, a right answer is that case field's text,
verbatim (e.g. HumanEval's `canonical_solution`), and a wrong one "I am not sure.". Tests can
script a judge with `responses`, a list of texts it picks from by trial key and seed; or pass
`script`, a function of the request that returns a response or raises
`ModelCallError`. Every call can be journaled to a file.

Fault options, to script what real endpoints do (all counted per request, i.e. per trial key,
or timed from the model's first call, so a run is repeatable):

    fail_first_n      the first n calls of each request fail
    status            the HTTP status of those failures (default 503: `server`; 429: `rate_limit`)
    retry_after_s     the Retry-After hint the failures carry
    hang_s            the first `hang_first_n` (default 1) calls of each request take this many
                      seconds more (to trip `call_timeout` or `idle_timeout`)
    outage_start_s,   every call that starts in [start, end) seconds after the first call fails
    outage_end_s      with `status` (a provider outage, for the circuit breaker)
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.core.retry import FailureKind, classify_status
from themis.ports.clock import ClockPort
from themis.ports.model import BeforeSend, StopBy

PROBABILITIES = ("skill", "failure_rate")
SECONDS = ("latency_s", "retry_after_s", "hang_s", "outage_start_s", "outage_end_s")
COUNTS = ("fail_first_n", "hang_first_n")
OPTIONS = (*PROBABILITIES, *SECONDS, *COUNTS, "status", "answer_field", "responses")
DEFAULT_STATUS = 503
_WORD = re.compile(r"\S+")
# The options `_faults` acts on: without them a call is neither delayed nor failed, and its
# count is never read (they are identity options, so a request without them shares its trial
# key with no request that has them; `latency_s`, a runtime option, reads no count).
_TIMED = frozenset(
    ("latency_s", "hang_s", "hang_first_n", "fail_first_n", "outage_start_s", "outage_end_s")
)
Script = Callable[[ModelRequest], ModelResponse]


def check_options(options: Mapping[str, Any]) -> str | None:
    """Why `options` are not valid for the fake provider, or `None` when they are."""
    for key, value in options.items():
        if key not in OPTIONS:
            return f"unknown option {key!r} (the fake provider knows {', '.join(OPTIONS)})"
        if key == "answer_field":
            if not isinstance(value, str) or not value:
                return f"option 'answer_field' must be a case field's name, got {value!r}"
            continue
        if key == "responses":
            if (
                not isinstance(value, list | tuple)
                or not value
                or not all(isinstance(text, str) for text in value)
            ):
                return f"option 'responses' must be a non-empty list of texts, got {value!r}"
            continue
        if key in COUNTS or key == "status":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return f"option {key!r} must be an integer >= 0, got {value!r}"
        elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return f"option {key!r} must be a number >= 0, got {value!r}"
        if key in PROBABILITIES and value > 1:
            return f"option {key!r} is a probability and must be <= 1, got {value!r}"
        if key == "status" and not 400 <= value <= 599:
            return f"option 'status' must be an HTTP error status (400..599), got {value!r}"
    if options.get("outage_end_s", 0) < options.get("outage_start_s", 0):
        return "option 'outage_end_s' must not be before 'outage_start_s'"
    return None


def _wrong_answer(reference: str | None, rng: random.Random) -> str:
    if reference is not None:
        try:
            return str(int(reference) + rng.randint(1, 9))
        except ValueError:
            pass
    return "I am not sure."


def _scripted_failure(options: Mapping[str, Any], why: str) -> ModelCallError:
    status = int(options.get("status", DEFAULT_STATUS))
    retry_after = options.get("retry_after_s")
    return ModelCallError(
        classify_status(status).value,
        f"HTTP {status}: {why}",
        status=status,
        retry_after_s=None if retry_after is None else float(retry_after),
    )


class ScriptedModel:
    """A `ModelPort` whose every answer is a pure function of the request (see module docstring)."""

    stops_own_calls = True  # it stops its calls itself: see `generate_sent`

    def __init__(
        self, clock: ClockPort, *, script: Script | None = None, journal: Path | None = None
    ) -> None:
        self._clock = clock
        self._script = script
        self._journal = journal.open("a", encoding="utf-8") if journal is not None else None
        self._calls_by_key: dict[str, int] = {}
        self._first_call: float | None = None
        self._rng = random.Random()  # re-seeded per call: the same draws as a new generator
        self.calls = 0

    async def generate_sent(
        self, request: ModelRequest, before_send: BeforeSend | None
    ) -> ModelResponse:
        """`generate`, the request leaving (`before_send`) before anything else happens.

        It stops its own calls (`stops_own_calls`, ADR 0038): a call waits only in the sleep of
        its timed options (`latency_s`, `hang_s`, ...), which `stop` ends; a call without them
        never waits, so nothing could stop it midway and it takes no cancel scope at all (ADR
        0042: the scope cost ~5-10 us a trial, for a cancellation that could not land).
        """
        if before_send is None:
            return await self.generate(request)
        await before_send()
        stop_by: StopBy | None = getattr(before_send, "stop_by", None)
        if stop_by is None or _TIMED.isdisjoint(request.options):
            return await self.generate(request)
        import trio  # only calls that wait need it

        with trio.CancelScope() as waiting:
            stop_by(waiting.cancel)
            return await self.generate(request)
        raise ModelCallError(FailureKind.TIMEOUT.value, f"the call to {request.model} was stopped")

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        options = request.options
        if self._journal is not None:
            entry = {
                "trial_key": request.trial_key,
                "model": request.model,
                "at": self._clock.now(),
            }
            self._journal.write(json.dumps(entry) + "\n")
            self._journal.flush()
        if options:
            if not _TIMED.isdisjoint(options):
                await self._faults(request, options)
            elif self._first_call is None:  # what `_faults` would have done: nothing else
                self._first_call = self._clock.monotonic()
        if self._script is not None:
            return self._script(request)
        failure_rate = float(options.get("failure_rate", 0.0))
        skill = float(options.get("skill", 1.0))
        responses = options.get("responses")
        rng = None
        correct = True
        if failure_rate > 0 or skill < 1 or responses:  # else no draw could change the answer
            rng = self._rng
            rng.seed(f"{request.trial_key}:{request.params.seed}")
            if rng.random() < failure_rate:
                raise ModelCallError("server", f"scripted failure of {request.model}")
            if responses:  # e.g. a scripted judge's verdicts: one of them, by key and seed
                text = str(rng.choice(list(responses)))
                prompt_words = sum(len(message.content.split()) for message in request.messages)
                return ModelResponse(
                    text=text,
                    finish_reason="stop",
                    input_tokens=prompt_words,
                    output_tokens=len(text.split()),
                    served_model=request.model,
                )
            correct = rng.random() < skill
        if correct and request.reference is not None:
            answer = request.reference
        elif rng is None:  # right, with no reference to be right about
            answer = "I am not sure."
        else:
            answer = _wrong_answer(request.reference, rng)
        prompt_words = sum(len(message.content.split()) for message in request.messages)
        verbatim = "answer_field" in options  # a field's text (e.g. code), or a wrong answer
        text = (answer if correct else "I am not sure.") if verbatim else f"The answer is {answer}."
        # A word per token: the text is cut after the `max_tokens`-th word, its layout kept.
        # (`str.split` and `\S+` split on the same whitespace.)
        max_tokens = request.params.max_tokens
        words = len(text.split())
        cut = words > max_tokens
        if cut:
            text = text[: list(_WORD.finditer(text))[max_tokens - 1].end()]
        return ModelResponse(
            text=text,
            finish_reason="length" if cut else "stop",
            input_tokens=prompt_words,
            output_tokens=min(words, max_tokens),
            served_model=request.model,
        )

    async def _faults(self, request: ModelRequest, options: Mapping[str, Any]) -> None:
        """Apply the fault options and `latency_s` to this call (module docstring)."""
        now = self._clock.monotonic()
        if self._first_call is None:
            self._first_call = now
        call = self._calls_by_key[request.trial_key] = (
            self._calls_by_key.get(request.trial_key, 0) + 1
        )
        start, end = options.get("outage_start_s"), options.get("outage_end_s")
        if end is not None and float(start or 0.0) <= now - self._first_call < float(end):
            raise _scripted_failure(options, f"{request.model} is down (scripted outage)")
        if call <= int(options.get("fail_first_n", 0)):
            raise _scripted_failure(options, f"scripted failure {call} of {request.model}")
        delay = float(options.get("latency_s", 0.0))
        if call <= int(options.get("hang_first_n", 1)):
            delay += float(options.get("hang_s", 0.0))
        if delay:
            await self._clock.sleep(delay)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

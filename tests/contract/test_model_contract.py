"""The `ModelPort` contract, run against every adapter: the scripted model, and the
OpenAI-compatible (chat and completions) and Anthropic adapters over HTTP against our fake server
(tests/fakeserver), on the lean HTTP/1.1 client and on httpx's.

Each adapter supplies only how to build it and how to make a call fail with a given kind: the
scripted model through its fault options, the HTTP adapters through the fake server's faults.
Every adapter here answers "What is a + b?" with a + b (the scripted model from the request's
`reference`, the fake server from the prompt), which is what lets a test tell answers apart.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

import attrs
import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakeserver import FakeServer
from themis.adapters.clocks import FakeClock, SystemClock
from themis.adapters.models.anthropic import AnthropicModel
from themis.adapters.models.http import PoolLimits
from themis.adapters.models.openai import OpenAICompatibleModel
from themis.adapters.models.scripted import ScriptedModel
from themis.core.endpoint import Endpoint
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.core.prompting import Message
from themis.core.retry import FailureKind
from themis.core.spec import GenerationParams
from themis.ports.model import ModelPort, SendTimedModelPort

KEY = "sk-contract-0123456789"
CONCURRENT = 8
KINDS = {kind.value for kind in FailureKind}
Failing = tuple[ModelPort, ModelRequest]


def ask(a: int, b: int, *, api: str | None) -> ModelRequest:
    """A deterministic request (temperature 0, a seed) for `a + b`, its sum as the reference."""
    return ModelRequest(
        trial_key=f"trial-{a}-{b}",
        provider="contract",
        model="contract-model",
        messages=(Message("system", "Be brief."), Message("user", f"What is {a} + {b}?")),
        params=GenerationParams(temperature=0.0, seed=7),
        options={},
        sample=0,
        reference=str(a + b),
        api=api,
    )


def numbers(text: str) -> list[str]:
    return re.findall(r"-?\d+", text)


def generate(model: ModelPort, request: ModelRequest) -> ModelResponse:
    return trio.run(model.generate, request)


def failure(model: ModelPort, request: ModelRequest) -> ModelCallError:
    with pytest.raises(ModelCallError) as raised:
        generate(model, request)
    return raised.value


class ModelContract:
    """The tests every `ModelPort` adapter must pass."""

    api: ClassVar[str | None] = None  # the API the requests name (`ModelRequest.api`)
    # The kinds `failing` can make a call fail with: at least `rate_limit` and `server`.
    failure_kinds: ClassVar[Collection[FailureKind]] = ()

    def make_model(self) -> ModelPort:
        raise NotImplementedError

    def failing(
        self, kind: FailureKind, request: ModelRequest, *, retry_after_s: float | None = None
    ) -> Failing:
        """An adapter and a version of `request` whose first call fails with `kind` (one of
        `failure_kinds`), carrying `retry_after_s` as the server's wait hint, and whose later
        calls answer."""
        raise NotImplementedError

    @pytest.fixture
    def model(self) -> ModelPort:
        return self.make_model()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """A test taking `kind` runs once for each of this adapter's `failure_kinds` (a hook
        pytest calls on the test class, so it follows the contract into any module)."""
        if "kind" in metafunc.fixturenames:
            metafunc.parametrize("kind", sorted(self.failure_kinds), ids=str)

    def ask(self, a: int, b: int) -> ModelRequest:
        return ask(a, b, api=self.api)

    # --- answers --------------------------------------------------------------------------------

    def test_an_answer_is_a_response_of_plain_values(self, model: ModelPort) -> None:
        response = generate(model, self.ask(19, 23))
        assert type(response) is ModelResponse
        assert type(response.text) is str
        assert numbers(response.text)[-1:] == ["42"]
        for count in (response.input_tokens, response.output_tokens):
            assert count is None or (type(count) is int and count >= 0)
        for text in (
            response.finish_reason,
            response.served_model,
            response.response_id,
            response.system_fingerprint,
        ):
            assert text is None or type(text) is str
        assert response.logprobs is None  # not asked for

    def test_the_same_request_gets_the_same_answer_in_a_run_and_across_runs(
        self, model: ModelPort
    ) -> None:
        request = self.ask(19, 23)

        async def twice() -> list[str]:
            return [(await model.generate(request)).text for _ in range(2)]

        texts = trio.run(twice) + trio.run(twice)
        assert texts == [texts[0]] * 4

    def test_the_messages_reach_the_model(self, model: ModelPort) -> None:
        request = self.ask(19, 23)
        other = attrs.evolve(
            request,
            messages=(
                Message("system", "Be brief, and answer with one number only."),
                Message("user", "Please add these two numbers for me. What is 2 + 3?"),
            ),
        )
        first, second = generate(model, request), generate(model, other)
        # Only the messages differ: the answer, or at least what it used of the prompt, follows.
        assert (first.text, first.input_tokens) != (second.text, second.input_tokens)

    def test_concurrent_calls_each_get_their_own_answer(self, model: ModelPort) -> None:
        requests = [self.ask(10 * index, index) for index in range(1, CONCURRENT + 1)]
        texts: dict[int, str] = {}

        async def one(index: int) -> None:
            texts[index] = (await model.generate(requests[index])).text

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                for index in range(CONCURRENT):
                    nursery.start_soon(one, index)

        trio.run(main)
        assert {index: numbers(text)[-1:] for index, text in texts.items()} == {
            index: [request.reference] for index, request in enumerate(requests)
        }

    # --- the moment a request leaves (`SendTimedModelPort`) ---------------------------------------

    def arrived(self, model: ModelPort) -> int:
        """How many requests have reached the endpoint of `model` so far."""
        raise NotImplementedError

    def test_before_send_runs_once_right_before_the_request_leaves(self, model: ModelPort) -> None:
        assert isinstance(model, SendTimedModelPort)
        before = self.arrived(model)
        seen: list[int] = []

        async def before_send() -> None:
            await trio.sleep(0.05)  # a rate limit's wait: the request must not leave meanwhile
            seen.append(self.arrived(model))

        response = trio.run(model.generate_sent, self.ask(19, 23), before_send)

        assert numbers(response.text)[-1:] == ["42"]
        assert seen == [before]
        assert self.arrived(model) == before + 1

    def test_a_before_send_that_raises_sends_nothing(self, model: ModelPort) -> None:
        assert isinstance(model, SendTimedModelPort)

        async def refuse() -> None:
            raise LookupError("no grant")

        async def main() -> ModelResponse:
            await model.generate(self.ask(1, 2))  # a connection to reuse, for adapters with one
            before = self.arrived(model)
            with pytest.raises(LookupError, match="no grant"):
                await model.generate_sent(self.ask(19, 23), refuse)
            assert self.arrived(model) == before
            return await model.generate(self.ask(19, 23))

        assert numbers(trio.run(main).text)[-1:] == ["42"]

    # --- failures -------------------------------------------------------------------------------

    def test_a_failure_is_a_model_call_error_of_its_kind_and_the_next_call_answers(
        self, kind: FailureKind
    ) -> None:
        model, request = self.failing(kind, self.ask(19, 23))
        outcomes: list[ModelCallError | ModelResponse] = []

        async def main() -> None:
            for _ in range(2):
                try:
                    outcomes.append(await model.generate(request))
                except ModelCallError as error:
                    outcomes.append(error)

        trio.run(main)  # anything but a ModelCallError (a transport's exception) escapes here
        error, answer = outcomes
        assert isinstance(error, ModelCallError)
        assert error.kind in KINDS
        assert error.kind == kind
        assert error.retry_after_s is None  # no hint was given, and none is made up
        assert isinstance(answer, ModelResponse)
        assert numbers(answer.text)[-1:] == ["42"]

    @pytest.mark.parametrize("hinted", [FailureKind.RATE_LIMIT, FailureKind.SERVER], ids=str)
    def test_the_servers_wait_hint_travels_with_the_failure(self, hinted: FailureKind) -> None:
        model, request = self.failing(hinted, self.ask(19, 23), retry_after_s=2.0)
        error = failure(model, request)
        assert (error.kind, error.retry_after_s) == (hinted, 2.0)


# --- the adapters -------------------------------------------------------------------------------

# The HTTP status the scripted model fails with to give each kind (`classify_status`).
SCRIPTED_STATUS: Mapping[FailureKind, int] = {
    FailureKind.RATE_LIMIT: 429,
    FailureKind.SERVER: 503,
    FailureKind.TIMEOUT: 408,
    FailureKind.RETRYABLE: 409,
    FailureKind.AUTH: 401,
    FailureKind.BAD_REQUEST: 400,
    FailureKind.QUOTA_EXHAUSTED: 402,
}


class TestScriptedModel(ModelContract):
    failure_kinds = SCRIPTED_STATUS.keys()  # not connection, context_length, content_filter

    def make_model(self) -> ModelPort:
        return ScriptedModel(FakeClock())

    def arrived(self, model: ModelPort) -> int:
        assert isinstance(model, ScriptedModel)
        return model.calls

    def failing(
        self, kind: FailureKind, request: ModelRequest, *, retry_after_s: float | None = None
    ) -> Failing:
        options: dict[str, Any] = {"fail_first_n": 1, "status": SCRIPTED_STATUS[kind]}
        if retry_after_s is not None:
            options["retry_after_s"] = retry_after_s
        return self.make_model(), attrs.evolve(request, options=options)


def _seeded_answer(request: ModelRequest) -> str:
    """The scripted model's answer as its seeded draws give it (how it was first written)."""
    rng = random.Random(f"{request.trial_key}:{request.params.seed}")
    if rng.random() < float(request.options.get("failure_rate", 0.0)):
        return "<failed>"
    if request.options.get("responses"):
        return str(rng.choice(list(request.options["responses"])))
    correct = rng.random() < float(request.options.get("skill", 1.0))
    reference = request.reference
    if correct and reference is not None:
        return f"The answer is {reference}."
    if reference is not None and reference.isdigit():
        return f"The answer is {int(reference) + rng.randint(1, 9)}."
    return "The answer is I am not sure.."


@given(
    key=st.text(min_size=1, max_size=20),
    seed=st.integers(0, 2**31),
    reference=st.one_of(st.none(), st.from_regex(r"[0-9]{1,6}", fullmatch=True), st.just("x")),
    options=st.one_of(
        st.just({}),
        st.fixed_dictionaries(
            {
                "skill": st.sampled_from([0.0, 0.3, 0.7, 1.0]),
                "failure_rate": st.sampled_from([0.0, 0.2]),
            },
            optional={"responses": st.sampled_from([[], ["A", "B", "tie"]])},
        ),
    ),
)
@settings(max_examples=300)
def test_the_scripted_model_answers_as_its_seeded_draws(
    key: str, seed: int, reference: str | None, options: dict[str, Any]
) -> None:
    request = attrs.evolve(
        ask(1, 2, api=None),
        trial_key=key,
        params=GenerationParams(seed=seed),
        reference=reference,
        options=options,
    )
    try:
        text = generate(ScriptedModel(FakeClock()), request).text
    except ModelCallError:
        text = "<failed>"
    assert text == _seeded_answer(request)


def test_one_scripted_model_answers_each_request_as_its_own_seeded_draws() -> None:
    """The model re-seeds one generator per call: no call's draws leak into the next."""
    model = ScriptedModel(FakeClock())
    options = {"skill": 0.5, "failure_rate": 0.2}
    for index in range(60):
        request = attrs.evolve(ask(index, 1, api=None), trial_key=f"key-{index}", options=options)
        try:
            text = generate(model, request).text
        except ModelCallError:
            text = "<failed>"
        assert text == _seeded_answer(request)


@given(
    text=st.text(
        alphabet=st.sampled_from(["a", "b", " ", "\t", "\n", "\u00a0", "\u2003", "\x1c", "\x85"]),
        max_size=30,
    ),
    max_tokens=st.integers(1, 8),
)
def test_the_scripted_model_cuts_a_verbatim_answer_after_its_max_tokens_th_word(
    text: str, max_tokens: int
) -> None:
    request = attrs.evolve(
        ask(1, 2, api=None),
        reference=text,
        options={"answer_field": "solution"},
        params=GenerationParams(max_tokens=max_tokens),
    )
    response = generate(ScriptedModel(FakeClock()), request)
    words = list(re.finditer(r"\S+", text))
    cut = len(words) > max_tokens
    assert response.text == (text[: words[max_tokens - 1].end()] if cut else text)
    assert response.output_tokens == min(len(words), max_tokens)
    assert response.finish_reason == ("length" if cut else "stop")


# The fake server's fault for each kind (tests/fakeserver/behaviour.py); `timeout` is a hang.
SERVER_FAULT: Mapping[FailureKind, Mapping[str, Any]] = {
    FailureKind.RATE_LIMIT: {"kind": "status", "status": 429},
    FailureKind.SERVER: {"kind": "status", "status": 503},
    FailureKind.TIMEOUT: {"kind": "hang"},
    FailureKind.CONNECTION: {"kind": "drop"},
    FailureKind.RETRYABLE: {"kind": "status", "status": 409},
    FailureKind.AUTH: {"kind": "status", "status": 401},
    FailureKind.BAD_REQUEST: {"kind": "status", "status": 400, "body": "bad seed"},
    FailureKind.CONTEXT_LENGTH: {
        "kind": "status",
        "status": 400,
        "body": "This model's maximum context length is 4096 tokens",
    },
    FailureKind.CONTENT_FILTER: {
        "kind": "status",
        "status": 400,
        "body": "The response was filtered (content_filter)",
    },
    FailureKind.QUOTA_EXHAUSTED: {
        "kind": "status",
        "status": 429,
        "body": "You exceeded your current quota (insufficient_quota)",
    },
}
HANG_TIMEOUT_S = 0.3


class OnFakeServer(ModelContract):
    """An HTTP adapter against the shared fake server, reset for each test (`fake`)."""

    server: FakeServer
    failure_kinds = SERVER_FAULT.keys()

    def build(self, server: FakeServer, *, timeout: float) -> ModelPort:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _on_fake_server(self, fake: FakeServer) -> None:
        self.server = fake

    def make_model(self) -> ModelPort:
        return self.build(self.server, timeout=5.0)

    def arrived(self, model: ModelPort) -> int:
        return int(self.server.stats()["calls"])

    def failing(
        self, kind: FailureKind, request: ModelRequest, *, retry_after_s: float | None = None
    ) -> Failing:
        fault = dict(SERVER_FAULT[kind])
        if retry_after_s is not None:
            fault["retry_after"] = retry_after_s
        self.server.control(script=[{"fault": fault, "times": 1}])
        timeout = HANG_TIMEOUT_S if kind is FailureKind.TIMEOUT else 5.0
        return self.build(self.server, timeout=timeout), request


class TestOpenAIChat(OnFakeServer):
    # `None`: the lean HTTP/1.1 client; httpx's own transport: the client `https://` uses.
    transport: ClassVar[type[httpx.AsyncHTTPTransport] | None] = None

    def build(self, server: FakeServer, *, timeout: float) -> ModelPort:
        return OpenAICompatibleModel(
            "local",
            Endpoint(base_url=server.openai_base_url, api_key="${KEY}"),
            clock=SystemClock(),
            pool=PoolLimits(3, timeout),
            environ={"KEY": KEY},
            transport=None if self.transport is None else self.transport(),
        )


class TestOpenAICompletions(TestOpenAIChat):
    api = "completions"


class TestOpenAIChatOnHttpx(TestOpenAIChat):
    """The httpx client (what `https://` and HTTP/2 endpoints use) instead of the lean one."""

    transport = httpx.AsyncHTTPTransport


class TestAnthropic(OnFakeServer):
    def build(self, server: FakeServer, *, timeout: float) -> ModelPort:
        return AnthropicModel(
            "claude",
            Endpoint(base_url=server.anthropic_base_url, api_key="${KEY}"),
            clock=SystemClock(),
            pool=PoolLimits(3, timeout),
            environ={"KEY": KEY},
        )

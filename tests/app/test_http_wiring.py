"""Wiring HTTP providers: which adapter serves which provider, what is refused before any call,
endpoints in config files, and the example configs (loaded and checked, never contacted).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

import themis
from tests.fakeserver import FakeServer
from themis.adapters.clocks import SystemClock
from themis.adapters.models.anthropic import AnthropicModel
from themis.adapters.models.openai import OpenAICompatibleModel
from themis.app.config.loading import config_from_mapping, load_config
from themis.app.wiring import check_models, model_ports
from themis.core.endpoint import Endpoint
from themis.core.errors import ConfigError
from themis.core.runtime import RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    ModelSpec,
    PromptSpec,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LOCAL = Endpoint(base_url="http://127.0.0.1:9/v1")


def spec(*models: ModelSpec) -> ExperimentSpec:
    return ExperimentSpec(
        seed=1,
        samples=2,
        datasets=(
            DatasetSpec(name="d", cases=(Case(id="c", fields={"q": "1 + 2"}, expected="3"),)),
        ),
        models=models,
        prompts=(PromptSpec(name="p", template="What is {{ q }}?"),),
    )


def model(name: str = "m", provider: str = "local", **changes: Any) -> ModelSpec:
    return ModelSpec(name=name, model="x", provider=provider, **changes)


def runtime(**endpoints: Endpoint) -> RuntimeConfig:
    return RuntimeConfig(endpoints=endpoints)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


def ports(experiment: ExperimentSpec, settings: RuntimeConfig) -> dict[str, Any]:
    with model_ports(experiment, SystemClock(), runtime=settings) as built:
        return dict(built)


def test_each_provider_gets_the_adapter_of_its_api(keys: None) -> None:
    experiment = spec(
        model("gpt", "openai"),
        model("claude", "anthropic"),
        model("vllm", "local", api="completions"),
        model("proxy", "gateway", api="messages"),
    )
    settings = RuntimeConfig(
        max_concurrent_tasks=32,
        provider_concurrency={"local": 3},
        stage_concurrency={"generate": 16},
        call_timeout=12.0,
        endpoints={"local": LOCAL, "gateway": Endpoint(base_url="http://127.0.0.1:9/anthropic")},
    )
    built = ports(experiment, settings)
    assert {name: type(port) for name, port in built.items()} == {
        "anthropic": AnthropicModel,
        "gateway": AnthropicModel,
        "local": OpenAICompatibleModel,
        "openai": OpenAICompatibleModel,
    }
    assert built["openai"].base_url == "https://api.openai.com/v1"
    assert built["anthropic"].url("messages") == "https://api.anthropic.com/v1/messages"
    assert built["local"].url("completions") == "http://127.0.0.1:9/v1/completions"
    assert built["local"].max_connections == 3  # provider_concurrency
    assert built["openai"].max_connections == 16  # the generate stage's limit
    assert built["openai"].timeout is None  # the interpreter's CallWatch bounds each call
    assert built["openai"].variables() == ("OPENAI_API_KEY",)  # the built-in default reference
    assert built["local"].variables() == ()  # a custom provider has no key unless given one


REFUSED = [
    (spec(model("m", "nosuch")), runtime(), "models.m.provider: unknown provider 'nosuch'"),
    (
        spec(model(api="chat")),
        runtime(local=Endpoint()),
        "runtime.endpoints.local.base_url: required",
    ),
    (spec(model()), runtime(local=LOCAL), "models.m.api: provider 'local' is not built in"),
    (
        spec(model("a", api="chat"), model("b", api="messages")),
        runtime(local=LOCAL),
        "models.b.api: provider 'local' serves the chat/completions APIs, not 'messages'",
    ),
    (
        spec(model("a", "openai", api="messages")),
        runtime(),
        "models.a.api: provider 'openai' serves the chat/completions APIs, not 'messages'",
    ),
    (
        spec(model("a", "anthropic", api="chat")),
        runtime(),
        "models.a.api: provider 'anthropic' serves the messages API, not 'chat'",
    ),
    (
        spec(model("a", api="chat"), model("b", api="completions")),
        runtime(local=attrs.evolve(LOCAL, path="/v1/generate")),
        "runtime.endpoints.local.path: one path cannot serve both",
    ),
    (
        spec(model("a", api="chat", options={"temperature": 1.0})),
        runtime(local=LOCAL),
        "models.a.options.temperature: Themis sets this request field itself",
    ),
    (
        spec(model("a", api="chat", options={"stream": True})),
        runtime(local=LOCAL),
        "models.a.options.stream: Themis sets this request field itself",
    ),
    (
        spec(model("a", "anthropic", params=GenerationParams(n=2))),
        runtime(),
        "models.a.params.n: the Anthropic Messages API has no n",
    ),
    (
        spec(model("a", "anthropic", params=GenerationParams(logprobs=1))),
        runtime(),
        "models.a.params.logprobs: the Anthropic Messages API has no logprobs",
    ),
    (spec(model("a", "fake")), runtime(fake=LOCAL), "runtime.endpoints.fake: the built-in fake"),
    (spec(model("a", "fake", api="chat")), runtime(), "models.a.api: the fake provider has no API"),
]


@pytest.mark.parametrize(("experiment", "settings", "message"), REFUSED)
def test_impossible_settings_are_refused_before_any_call(
    keys: None, experiment: ExperimentSpec, settings: RuntimeConfig, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        check_models(experiment, {}, settings)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("installed", [False, True])
def test_http2_needs_h2(monkeypatch: pytest.MonkeyPatch, installed: bool) -> None:
    """h2 is not a dependency: asking for HTTP/2 without it names the package to install."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        if name == "h2":
            return real("json") if installed else None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    settings = runtime(local=attrs.evolve(LOCAL, http2=True))
    experiment = spec(model(api="chat"))
    if installed:
        check_models(experiment, {}, settings)
    else:
        with pytest.raises(ConfigError, match=r"local.http2: needs the h2 package"):
            check_models(experiment, {}, settings)


def test_a_provider_overridden_in_python_needs_no_endpoint() -> None:
    check_models(spec(model("m", "nosuch")), {"nosuch": object()}, runtime())  # type: ignore[dict-item]


# --- secrets before any call -------------------------------------------------------------------


def test_a_missing_variable_fails_the_run_before_any_call(
    server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.reset()
    monkeypatch.delenv("THEMIS_TEST_MISSING_KEY", raising=False)
    endpoint = Endpoint(base_url=server.openai_base_url, api_key="${THEMIS_TEST_MISSING_KEY}")
    experiment = themis.Experiment.from_spec(
        spec(model(api="chat")), RuntimeConfig(endpoints={"local": endpoint})
    )
    store = tmp_path / "s.duckdb"
    with pytest.raises(ConfigError) as raised:
        experiment.run(store=store)
    assert str(raised.value) == (
        "runtime.endpoints.local.api_key: environment variable THEMIS_TEST_MISSING_KEY is not "
        "set (the local provider needs it to authenticate)"
    )
    assert server.stats()["calls"] == 0
    assert not store.exists()  # refused before the store was even opened


# --- endpoints in config files -----------------------------------------------------------------


CONFIG: dict[str, Any] = {
    "seed": 1,
    "samples": 1,
    "datasets": [{"name": "d", "cases": [{"id": "c", "fields": {"q": "1+1"}, "expected": "2"}]}],
    "models": [{"name": "m", "provider": "local", "api": "chat", "model": "x"}],
    "prompts": [{"name": "p", "template": "{{ q }}"}],
}


def _load(endpoint: dict[str, Any]) -> Any:
    data = {**CONFIG, "runtime": {"endpoints": {"local": endpoint}}}
    return config_from_mapping(json.loads(json.dumps(data)), base_dir=Path.cwd(), source_name="c")


def test_an_endpoint_table_loads() -> None:
    loaded = _load(
        {
            "base_url": "http://127.0.0.1:8000/v1",
            "api_key": "${LOCAL_KEY}",
            "headers": {"X-Team": "eval", "Authorization": "Bearer ${TOKEN}"},
            "http2": False,
        }
    )
    endpoint = loaded.runtime.endpoints["local"]
    assert endpoint.api_key == "${LOCAL_KEY}"
    assert endpoint.variables() == ("LOCAL_KEY", "TOKEN")


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            {"api_key": "sk-live-abc123"},
            "c: runtime.endpoints.local.api_key: must name an environment variable",
        ),
        (
            {"headers": {"x-api-key": "sk-live-abc123"}},
            "c: runtime.endpoints.local.headers.x-api-key: a credential header",
        ),
        ({"base_url": "localhost:8000"}, "c: runtime.endpoints.local.base_url: must be an http"),
        ({"baseurl": "http://x"}, "c: runtime.endpoints.local.baseurl: unknown key (did you"),
    ],
)
def test_a_bad_endpoint_is_one_line_that_never_shows_a_secret(
    endpoint: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(endpoint)
    text = str(raised.value)
    assert text.startswith(message)
    assert "sk-live" not in text
    assert "\n" not in text


# --- the examples ------------------------------------------------------------------------------

EXAMPLE_FILES = ["openai.toml", "anthropic.toml", "local-openai-compatible.toml"]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_the_http_examples_load_and_pass_every_check(name: str, keys: None) -> None:
    config = load_config(EXAMPLES / name)
    check_models(config.spec, {}, config.runtime)  # no network: adapters only built
    built = ports(config.spec, config.runtime)
    assert set(built) == {model.provider for model in config.spec.models}
    assert themis.Experiment(config.spec, config.runtime).run_id  # compiles


def test_the_examples_keep_keys_out_of_the_files() -> None:
    for name in EXAMPLE_FILES:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        assert "sk-" not in text.replace("sk-...", "").replace("sk-ant-...", "")


def test_n_sampling_through_a_whole_run(server: FakeServer, tmp_path: Path) -> None:
    """With `n = 2`, four samples of a case cost two calls; every sample is scored."""
    server.reset()
    experiment = ExperimentSpec(
        seed=1,
        samples=4,
        datasets=(
            DatasetSpec(
                name="d",
                cases=tuple(
                    Case(id=f"c{i}", fields={"q": f"{i} + {i}"}, expected=str(2 * i))
                    for i in range(3)
                ),
            ),
        ),
        models=(model(api="chat", params=GenerationParams(n=2, seed=100)),),
        prompts=(PromptSpec(name="p", template="What is {{ q }}?"),),
        parser=themis.ParserSpec(name="number"),
        metrics=(themis.MetricSpec(name="numeric_match"),),
    )
    settings = RuntimeConfig(
        max_concurrent_tasks=3, endpoints={"local": Endpoint(base_url=server.openai_base_url)}
    )
    result = themis.Experiment.from_spec(experiment, settings).run(store="memory")

    assert (result.report.scored, result.report.failed, result.model_calls) == (12, 0, 12)
    assert result.report.rows[0].mean == 1.0
    calls = server.journal()
    assert len(calls) == 6
    assert sorted(call["body"]["seed"] for call in calls) == [100, 100, 100, 102, 102, 102]
    assert {call["body"]["n"] for call in calls} == {2}


def test_an_outage_fails_calls_until_it_ends(server: FakeServer) -> None:
    """Every call fails until the outage ends, and none after. Load-proof: the window is long
    enough for the first call to land in it on a loaded machine, and the end is checked on the
    shared monotonic clock (the first success comes no earlier than the window allows) rather
    than by sleeping a fixed time."""
    outage_s = 2.0
    server.reset()
    started = time.monotonic()  # the server starts the window after this
    server.control(outage={"seconds": outage_s, "fault": {"kind": "status", "status": 503}})
    statuses: list[int] = []
    with httpx.Client(base_url=server.openai_base_url, trust_env=False) as client:
        body = {"model": "m", "messages": [{"role": "user", "content": "1 + 1"}]}
        deadline = started + 60.0  # a guard against a hang, not a speed check
        while not statuses or statuses[-1] != 200:
            assert time.monotonic() < deadline, f"the outage never ended: {statuses}"
            statuses.append(client.post("/chat/completions", json=body).status_code)
            if statuses[-1] == 503:
                time.sleep(0.05)
        ended = time.monotonic()
        assert client.post("/chat/completions", json=body).status_code == 200
    assert statuses[0] == 503  # the first call fell inside the window
    assert set(statuses[:-1]) == {503}
    assert ended - started >= outage_s  # no success before the window could have ended

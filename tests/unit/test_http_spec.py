"""The spec side of HTTP models: endpoints (runtime, secrets by reference), `api`, `n`, `logprobs`
(identity, left out of identity at their defaults so older runs keep their ids and keys).
"""

from __future__ import annotations

import attrs
import pytest

from tests.unit.builders import small_spec
from themis.core.endpoint import Endpoint, MissingVariable, is_reference, references, substitute
from themis.core.planner import compile_run, plan, sample_seed
from themis.core.spec import ExperimentSpec, GenerationParams, ModelSpec

# Trial keys of `small_spec()` computed before `api`, `n` and `logprobs` existed: they must not
# move, or every store would lose its cross-run cache.
PINNED_KEYS = {
    0: "bf97a6ebe2768d9927bf19ab07422a25",
    1: "6460947b34808214092d978c6df94fce",
    2: "a69d62cd7bd6b93a87063bc11494f7da",
    15: "88f767e90bb5de8c3e6dbb6e863e7213",
}


def _models(spec: ExperimentSpec, **changes: object) -> ExperimentSpec:
    return attrs.evolve(spec, models=tuple(attrs.evolve(m, **changes) for m in spec.models))


def _params(spec: ExperimentSpec, **changes: object) -> ExperimentSpec:
    return attrs.evolve(
        spec,
        models=tuple(
            attrs.evolve(m, params=attrs.evolve(m.params, **changes)) for m in spec.models
        ),
    )


def test_trial_keys_of_older_specs_are_unchanged() -> None:
    trials = list(plan(compile_run(small_spec())))
    assert {index: trials[index].trial_key for index in PINNED_KEYS} == PINNED_KEYS


@pytest.mark.parametrize(
    "change",
    [
        lambda spec: _models(spec, api="chat"),
        lambda spec: _params(spec, logprobs=0),
        lambda spec: _params(spec, n=2),
    ],
    ids=["api", "logprobs", "n"],
)
def test_new_identity_fields_change_every_trial_key(change: object) -> None:
    assert callable(change)
    before = {trial.trial_key for trial in plan(compile_run(small_spec()))}
    after = {trial.trial_key for trial in plan(compile_run(change(small_spec())))}
    assert before.isdisjoint(after)


def test_the_request_carries_the_api() -> None:
    trials = list(plan(compile_run(_models(small_spec(), api="completions"))))
    assert {trial.request.api for trial in trials} == {"completions"}
    assert {trial.request.api for trial in plan(compile_run(small_spec()))} == {None}


def test_samples_sharing_a_request_with_n_share_its_seed() -> None:
    spec = attrs.evolve(small_spec(), samples=5)
    params = GenerationParams(n=2)
    seeds = [sample_seed(spec, params, sample) for sample in range(5)]
    assert seeds[0] == seeds[1] != seeds[2] == seeds[3] != seeds[4]
    fixed = GenerationParams(n=2, seed=10)
    assert [sample_seed(spec, fixed, s) for s in range(5)] == [10, 10, 12, 12, 14]
    assert [sample_seed(spec, GenerationParams(seed=10), s) for s in range(3)] == [10, 11, 12]


def test_n_larger_than_samples_is_refused() -> None:
    with pytest.raises(ValueError, match=r"n = 3 samples per request, more than samples = 2"):
        _params(small_spec(), n=3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n": 0}, "n: must be an integer >= 1"),
        ({"logprobs": -1}, "logprobs: must be an integer >= 0"),
    ],
)
def test_generation_params_are_validated(changes: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationParams(**changes)  # type: ignore[arg-type]


def test_model_api_is_one_of_three() -> None:
    with pytest.raises(ValueError, match="api: must be one of chat, completions, messages"):
        ModelSpec(name="m", model="x", api="responses")


# --- endpoints ---------------------------------------------------------------------------------


def test_references_are_found_and_substituted() -> None:
    assert references("Bearer ${A_KEY} and ${B}") == ("A_KEY", "B")
    assert is_reference("${OPENAI_API_KEY}")
    assert not is_reference("x${A}")
    assert not is_reference("sk-123")
    env = {"A_KEY": "k1", "B": "k2"}
    assert substitute("Bearer ${A_KEY}/${B}", env.get) == "Bearer k1/k2"
    with pytest.raises(MissingVariable) as missing:
        substitute("${NOPE}", env.get)
    assert missing.value.name == "NOPE"


def test_an_api_key_must_be_a_reference_and_is_never_echoed() -> None:
    with pytest.raises(ValueError, match=r"api_key: must name an environment variable") as error:
        Endpoint(api_key="sk-live-abcdef123456")
    assert "sk-live" not in str(error.value)
    assert Endpoint(api_key="${MY_KEY}").variables() == ("MY_KEY",)


@pytest.mark.parametrize("name", ["Authorization", "x-api-key", "X-Auth-Token", "api-key"])
def test_a_credential_header_must_use_a_reference(name: str) -> None:
    with pytest.raises(ValueError, match=f"headers.{name}: a credential header") as error:
        Endpoint(headers={name: "Bearer sk-secret-value"})
    assert "sk-secret" not in str(error.value)
    endpoint = Endpoint(headers={name: "Bearer ${TOKEN}", "X-Org": "research"})
    assert endpoint.variables() == ("TOKEN",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_url": "api.openai.com/v1"}, "base_url: must be an http:// or https:// URL"),
        ({"base_url": "http://${HOST}/v1"}, "base_url: may not contain"),
        ({"path": "chat/completions"}, "path: must start with '/'"),
        ({"headers": {"bad header": "x"}}, "not a valid header name"),
        ({"headers": {"Host": "x"}}, "headers.Host: reserved"),
        ({"headers": {"CONTENT-LENGTH": "3"}}, "headers.CONTENT-LENGTH: reserved"),
        ({"headers": {"transfer-encoding": "chunked"}}, "headers.transfer-encoding: reserved"),
        ({"headers": {"Connection": "close"}}, "headers.Connection: reserved"),
    ],
)
def test_endpoint_settings_are_validated(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Endpoint(**changes)  # type: ignore[arg-type]

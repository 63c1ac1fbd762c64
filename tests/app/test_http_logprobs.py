"""Token log-probabilities through a whole run: asked in a model's params, answered by our fake
endpoint over real HTTP, recorded on each `GenerationCompleted` in the store, and shown by
`inspect evaluation --json` (`evaluation_json`)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import themis
from tests.fakeserver import FakeServer
from themis.adapters.stores import DuckDBStore
from themis.app.render.evaluation import evaluation_json
from themis.core.endpoint import Endpoint
from themis.core.events import GenerationCompleted
from themis.core.generation import TokenLogprob
from themis.core.runtime import RuntimeConfig
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    GenerationParams,
    ModelSpec,
    PromptSpec,
)

TOKENS = ["The", " answer", " is", " 3."]  # the fake's answer to "What is 1 + 2?"
ASKED = tuple(TokenLogprob(token, -0.25, ((token, -0.25), ("<alt1>", -1.5))) for token in TOKENS)


def model(name: str, api: str, logprobs: int | None) -> ModelSpec:
    params = GenerationParams(seed=1, logprobs=logprobs)
    return ModelSpec(name=name, model="x", provider="local", api=api, params=params)


def run(server: FakeServer, store: Path) -> str:
    experiment = ExperimentSpec(
        seed=1,
        samples=2,
        datasets=(
            DatasetSpec(name="d", cases=(Case(id="c", fields={"q": "1 + 2"}, expected="3"),)),
        ),
        models=(
            model("chat", "chat", 2),
            model("completions", "completions", 2),
            model("plain", "chat", None),
        ),
        prompts=(PromptSpec(name="p", template="What is {{ q }}?"),),
    )
    settings = RuntimeConfig(endpoints={"local": Endpoint(base_url=server.openai_base_url)})
    result = themis.Experiment.from_spec(experiment, settings).run(store=store)
    assert (result.report.scored, result.report.failed) == (6, 0)
    return result.run_id


def test_logprobs_are_stored_on_each_generation_and_shown_by_inspect(
    server: FakeServer, tmp_path: Path
) -> None:
    server.reset()
    store = tmp_path / "s.duckdb"
    run_id = run(server, store)

    shown = evaluation_json(themis.get_evaluation_execution(run_id, "c", store))
    models = {trial["trial_key"]: trial["model"] for trial in shown["trials"]}
    with closing(DuckDBStore(store)) as opened:
        logged = [event for _, event in opened.read(run_id)]
        checkpoint = opened.load_checkpoint(run_id)
    generations = [event for event in logged if isinstance(event, GenerationCompleted)]
    assert len(generations) == 6
    for generation in generations:
        expected = None if models[generation.trial_key] == "plain" else ASKED
        assert generation.logprobs == expected, models[generation.trial_key]
    # `inspect` folds from the last checkpoint: the logprobs went through its codec too.
    assert checkpoint is not None
    assert set(checkpoint.state.generations.values()) == set(generations)

    expected_json = [
        {
            "token": token,
            "logprob": -0.25,
            "top": [{"token": token, "logprob": -0.25}, {"token": "<alt1>", "logprob": -1.5}],
        }
        for token in TOKENS
    ]
    by_model: dict[str, list[Any]] = {}
    for trial in shown["trials"]:
        generation = trial["generation"]
        by_model.setdefault(trial["model"], []).append(generation["logprobs"])
        assert generation["system_fingerprint"] == "fp_themis_fake"
        assert generation["response_id"].startswith(
            "cmpl-" if trial["model"] == "completions" else "chatcmpl-"
        )
    assert by_model == {
        "chat": [expected_json] * 2,
        "completions": [expected_json] * 2,
        "plain": [None, None],
    }

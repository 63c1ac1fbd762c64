"""A store for the viewer's tests: two runs of two scripted models whose every response carries
markup and a script (`HOSTILE`), one of them failing some trials for good."""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs
import pytest

import themis
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest

HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
CASES = 6


@attrs.frozen
class ViewerStore:
    path: Path
    run_a: str
    run_b: str


def _answer(request: ModelRequest) -> ModelResponse:
    """`alpha` right on every case, `beta` on even ones; `beta` fails for good on case 5."""
    number = int(request.reference or 0)
    if request.model == "beta-1" and number == 5:
        raise ModelCallError("bad_request", "no answer for five", status=400)
    right = request.model == "alpha-1" or number % 2 == 0
    return ModelResponse(text=f"{HOSTILE} {number if right else number + 1}", finish_reason="stop")


def _spec(seed: int) -> themis.ExperimentSpec:
    return themis.ExperimentSpec(
        name="viewer <b>demo</b>",
        seed=seed,
        samples=2,
        datasets=[
            themis.DatasetSpec(
                name="numbers",
                cases=[
                    themis.Case(id=f"n{i}", fields={"q": i}, expected=str(i)) for i in range(CASES)
                ],
            )
        ],
        models=[
            themis.ModelSpec(name="alpha", model="alpha-1", provider="hostile"),
            themis.ModelSpec(name="beta", model="beta-1", provider="hostile"),
        ],
        prompts=[themis.PromptSpec(name="plain", template="{{ q }}")],
        parser=themis.ParserSpec(name="number"),
        metrics=[themis.MetricSpec(name="exact_match")],
    )


def make_store(directory: Path) -> ViewerStore:
    store = directory / "runs.duckdb"
    runs = []
    for seed in (1, 2):
        clock = themis.FakeClock()
        model = themis.ScriptedModel(clock, script=_answer)
        result = themis.Experiment.from_spec(_spec(seed)).run(
            store=store, models={"hostile": model}, clock=clock
        )
        runs.append(result.run_id)
    return ViewerStore(store, runs[0], runs[1])


@pytest.fixture(scope="session")
def viewer_store(tmp_path_factory: pytest.TempPathFactory) -> ViewerStore:
    return make_store(tmp_path_factory.mktemp("viewer"))


def store_digests(store: Path) -> dict[str, str]:
    """The sha256 of the store file and of every file beside it named after it (its
    write-ahead log): equal before and after means nothing wrote the store."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(store.parent.glob(store.name + "*"))
        if path.is_file()
    }

"""A trial's three events built as the interpreter builds them, for the benches that fold,
write or time them without a run (`fold_memory.py`, `row_shape.py`, `trial_path.py`).

`trial_events(clock, trial, response, answer, scores)`: its generation, parse and score, each
timed by `clock`. `answered(compiled, trials)`: the scripted model answers each of `trials` in
turn, its answer parsed and scored by the run's parser and metrics, and all their events in
that order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from themis.core.events import GenerationCompleted, ParseCompleted, ScoreCompleted


def trial_events(
    clock: Any, trial: Any, response: Any, answer: str | None, scores: dict[str, float]
) -> tuple[Any, Any, Any]:
    """`trial`'s `GenerationCompleted` (one attempt, no retry), `ParseCompleted` and
    `ScoreCompleted`."""
    key, trial_id = trial.trial_key, trial.trial_id
    return (
        GenerationCompleted.of_response(
            clock.now(), key, response, latency_s=1e-5, attempts=1, retries=()
        ),
        ParseCompleted(at=clock.now(), trial_id=trial_id, trial_key=key, answer=answer),
        ScoreCompleted(at=clock.now(), trial_id=trial_id, trial_key=key, scores=scores),
    )


def answered(compiled: Any, trials: Iterable[Any]) -> list[Any]:
    """The events of `trials` (plans of `compiled`, read one at a time) answered by the
    scripted model on the system clock, parsed and scored."""
    import trio

    from themis.adapters.clocks import SystemClock
    from themis.adapters.models.scripted import ScriptedModel
    from themis.core.scoring import parse_answer, score_answer

    spec, clock = compiled.spec, SystemClock()
    model = ScriptedModel(clock)
    events: list[Any] = []

    async def answer() -> None:
        for trial in trials:
            response = await model.generate(trial.request)
            got = parse_answer(spec.parser, response.text).value_or(None)
            scores = {m.name: score_answer(m, got, trial.expected) for m in spec.metrics}
            events.extend(trial_events(clock, trial, response, got, scores))

    trio.run(answer)
    return events

"""The reduce stage and the execution metric through the Python API: candidates really run (in
the plain sandbox, fast and available everywhere), reductions fold, replays call no model."""

from __future__ import annotations

from typing import Any

import pytest

from themis.adapters.sandbox import SubprocessSandbox
from themis.adapters.stores.memory import MemoryStore
from themis.app import wiring
from themis.app.api.experiment import Experiment
from themis.core.errors import ConfigError
from themis.core.events import ExecutionCompleted, ReductionCompleted
from themis.core.reduction import group_id_of
from themis.core.stages import Stage
from themis.core.state import project

CASES = [
    {
        "id": "add",
        "prompt": "def add(a, b):\n",
        "solution": "    return a + b\n",
        "test": "def check(f):\n    assert f(2, 3) == 5\n",
        "entry_point": "add",
    },
    {
        "id": "neg",
        "prompt": "def neg(a):\n",
        "solution": "    return -a\n",
        "test": "def check(f):\n    assert f(4) == -4\n",
        "entry_point": "neg",
    },
]


def spec(skill: float = 1.0, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "code",
        "seed": 3,
        "samples": 4,
        "pass_at_k": [1, 4],
        "majority_at_k": [3],
        "datasets": [{"name": "mini", "cases": [{"id": c["id"], "fields": c} for c in CASES]}],
        "models": [
            {
                "name": "coder",
                "model": "fake-coder",
                "options": {"answer_field": "solution", "skill": skill},
            }
        ],
        "prompts": [{"name": "p", "template": "{{ prompt }}"}],
        "parser": {"name": "code", "language": "python"},
        "reducer": {"name": "majority"},
        "metrics": [
            {
                "name": "execution",
                "files": {"sol.py": "{prompt}{answer}\n{test}\ncheck({entry_point})\n"},
                "rules": [
                    {"stage": 1, "command": "python3 -m py_compile sol.py"},
                    {"stage": 2, "command": "python3 sol.py"},
                ],
            }
        ],
    }
    values.update(overrides)
    return values


@pytest.fixture(autouse=True)
def plain_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain sandbox: these tests are about the pipeline, the contract suite about isolation."""
    monkeypatch.setattr(
        wiring,
        "sandbox_for",
        lambda s: SubprocessSandbox(s.metrics[0].limits, isolate=False),
    )


def rows(result: Any) -> dict[str, float | None]:
    return {row.metric: row.mean for row in result.report.rows}


def test_canonical_solutions_pass_every_stage_and_reduce_by_majority() -> None:
    store = MemoryStore()
    experiment = Experiment.from_spec(spec())
    result = experiment.run(store)
    assert result.completed_through_stage is Stage.SCORE
    assert rows(result) == {
        "execution": 1.0,
        "execution:stage1": 1.0,
        "execution:stage2": 1.0,
        "pass@1(execution)": 1.0,
        "pass@4(execution)": 1.0,
        "majority@3(execution)": 1.0,
        "majority(execution)": 1.0,
    }
    state = project(event for _, event in store.read(experiment.run_id))
    gid = group_id_of("mini", "add", "p", "coder")
    reduction = state.reductions[gid]
    assert isinstance(reduction, ReductionCompleted)
    assert (reduction.sample, reduction.votes) == (0, {"    return a + b\n": 4})
    executed = state.code_executions[gid]
    assert isinstance(executed, ExecutionCompleted)
    assert executed.passed
    assert [(run.stage, run.outcome.exit_code) for run in executed.runs] == [(1, 0), (2, 0)]
    assert len(state.code_executions) == 2 * 4 + 2


def test_wrong_answers_fail_at_the_stage_that_catches_them() -> None:
    store = MemoryStore()
    experiment = Experiment.from_spec(spec(skill=0.5))
    result = experiment.run(store)
    values = rows(result)
    state = project(event for _, event in store.read(experiment.run_id))
    passed = [e.passed for e in state.code_executions.values() if e.trial_id in state.parses]
    failed = [e for e in state.code_executions.values() if not e.passed]
    assert failed, "skill 0.5 over 8 samples gives some wrong answers"
    assert all(e.failed_stage == 1 for e in failed)  # "I am not sure." does not compile
    assert all(len(e.runs) == 1 for e in failed)  # fail-fast: stage 2 never ran
    assert 0.0 < values["execution"] < 1.0  # type: ignore[operator]
    assert values["execution"] == values["execution:stage1"]
    assert values["pass@4(execution)"] >= values["pass@1(execution)"]  # type: ignore[operator]
    assert passed


def test_until_reduce_then_score_then_replays_call_no_model() -> None:
    store = MemoryStore()
    experiment = Experiment.from_spec(spec(skill=0.5))
    reduced = experiment.run(store, until_stage="reduce")
    assert reduced.completed_through_stage is Stage.REDUCE
    state = project(event for _, event in store.read(experiment.run_id))
    assert len(state.reductions) == 2
    assert not state.scores
    assert not state.code_executions
    full = experiment.run(store)
    assert (full.model_calls, full.completed_through_stage) == (0, Stage.SCORE)
    for stage in ("reduce", "score"):
        replayed = experiment.replay(stage, store)  # a model call would raise
        assert replayed.model_calls == 0
        assert replayed.completed_through_stage is Stage.SCORE
        assert replayed.report.rows == full.report.rows
    state = project(event for _, event in store.read(experiment.run_id))
    assert max(e.epoch for e in state.code_executions.values()) == 2


def test_replay_reduce_needs_a_reducer() -> None:
    store = MemoryStore()
    experiment = Experiment.from_spec(spec(reducer=None, pass_at_k=[1]))
    experiment.run(store)
    with pytest.raises(ConfigError, match="has no reducer"):
        experiment.replay("reduce", store)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"metrics": [{"name": "execution", "rules": [{"stage": 1, "command": "cat {nope}"}]}]},
            "uses nope, which the case does not have",
        ),
        (
            {
                "metrics": [
                    {
                        "name": "execution",
                        "files": {"../x.py": "{answer}"},
                        "rules": [{"stage": 1, "command": "true"}],
                    }
                ]
            },
            "must be a relative path inside the workspace",
        ),
        ({"metrics": [{"name": "execution"}]}, "needs at least one validation rule"),
        (
            {"reducer": {"name": "best_of", "metric": "execution"}},
            "score without running code",
        ),
    ],
)
def test_execution_configs_are_checked_when_they_compile(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Experiment.from_spec(spec(**overrides))

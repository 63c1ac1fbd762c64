"""The CLI over a code benchmark: `--until-stage reduce`, `replay --stage reduce|score` without a
model call, `inspect evaluation --case` with samples' code, validation results and the reduced
candidate, and the sandbox's gaps said once before a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Invoke, output_json
from themis.adapters.sandbox import SubprocessSandbox
from themis.app import wiring

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SLICE = ("--set", "datasets.0.limit=2", "--set", "samples=2", "--set", "pass_at_k=[1,2]")
SKILL = ("--set", 'models.0.options={answer_field="canonical_solution", skill=0.5}')


@pytest.fixture(autouse=True)
def plain_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain sandbox, whose gap is known: the isolation itself is the contract suite's."""

    def plain(spec: object) -> SubprocessSandbox:
        return SubprocessSandbox(isolate=False)

    monkeypatch.setattr(wiring, "sandbox_for", plain)
    # `themis run` imports it from wiring when it runs (not at import: cold start)
    monkeypatch.setattr(wiring, "sandbox_gaps", lambda spec: SubprocessSandbox(isolate=False).gaps)


def test_until_reduce_then_replays_and_inspection(invoke: Invoke, store: Path) -> None:
    config = EXAMPLES / "humaneval.toml"
    reduced = invoke("run", config, "--store", store, "--until-stage", "reduce", "--json", *SLICE)
    data = output_json(reduced)
    assert (data["status"], data["completed_through_stage"]) == ("completed", "reduce")
    assert reduced.stderr.count("sandbox: candidates keep network access") == 1
    full = output_json(invoke("run", config, "--store", store, "--json", *SLICE))
    assert (full["model_calls"], full["completed_through_stage"]) == (0, "score")
    run_id = full["run_id"]
    for stage in ("reduce", "score"):
        replayed = output_json(
            invoke("replay", run_id, "--stage", stage, "--store", store, "--json")
        )
        assert replayed["model_calls"] == 0
        assert replayed["completed_through_stage"] == "score"
    shown = invoke("inspect", "evaluation", run_id, "--case", "HumanEval/0", "--store", store)
    assert shown.exit_code == 0, shown.output
    for part in ("samples' code", "for idx, elem in", "stage 1: exit 0", "stage 2: exit 0"):
        assert part in shown.output
    assert "reduced candidates" in shown.output
    assert "majority" in shown.output
    as_json = output_json(
        invoke("inspect", "evaluation", run_id, "--case", "HumanEval/0", "--store", store, "--json")
    )
    (group,) = as_json["groups"]
    assert group["reduction"]["votes"]
    assert [run["stage"] for run in group["execution"]["runs"]] == [1, 2]
    assert as_json["trials"][0]["execution"]["passed"] is True


def test_the_report_shows_per_sample_and_sampled_rows(invoke: Invoke, store: Path) -> None:
    config = EXAMPLES / "humaneval.toml"
    result = invoke("run", config, "--store", store, *SLICE, *SKILL, "--quiet")
    assert result.exit_code == 0, result.output
    for label in ("execution:stage2", "pass@1(execution)", "pass@2(execution)"):
        assert label in result.output
    assert "majority(execution)" in result.output

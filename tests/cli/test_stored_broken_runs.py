"""A stored run holding a prompt that does not render for some case, or a parser pattern that
does not compile, never breaks reading the store: those trials fail with their reason, and every
command keeps working for every run of the store. (A new config like that is refused by the
compile-time checks; such a run can only come from elsewhere, e.g. an older Themis.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import Invoke, output_json
from themis.app.api.experiment import Experiment
from themis.app.wiring import opened_store
from themis.core.planner import compile_run
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.spec import (
    Case,
    DatasetSpec,
    ExperimentSpec,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
)

CASES = (
    Case(id="ok", fields={"n": 2}, expected="5"),
    Case(id="zero", fields={"n": 0}, expected="0"),  # `10 // n` raises for this one
)


def _spec(parser: ParserSpec) -> ExperimentSpec:
    return ExperimentSpec(
        name="broken",
        seed=1,
        samples=1,
        datasets=(DatasetSpec(name="d", cases=CASES),),
        models=(ModelSpec(name="m", model="fake-m", options={"skill": 1.0}),),
        prompts=(PromptSpec(name="p", template="What is 10 // {{ n }}? {{ 10 // n }}"),),
        parser=parser,
        metrics=(MetricSpec(name="exact_match"),),
    )


UNRENDERABLE = _spec(ParserSpec(name="number"))
UNPARSABLE = _spec(ParserSpec(name="regex", pattern="answer (\\d+"))


def _store_with(store: Path, *specs: ExperimentSpec) -> list[str]:
    """Write each spec's run into `store` as a snapshot only, bypassing the config checks."""
    ids = []
    with opened_store(store) as opened:
        for spec in specs:
            run_id = compile_run(spec).run_id
            opened.save_snapshot(RunSnapshot(run_id, 1.0, spec, RuntimeConfig(), {}))
            ids.append(run_id)
    return ids


@pytest.fixture
def broken(store: Path) -> tuple[str, str]:
    unrenderable, unparsable = _store_with(store, UNRENDERABLE, UNPARSABLE)
    return unrenderable, unparsable


def _every_reading_command_works(invoke: Invoke, store: Path, run_ids: tuple[str, ...]) -> None:
    for args in (("quickcheck",), ("quickcheck", "--json"), ("runs",), ("runs", "--json")):
        result = invoke(*args, "--store", store)
        assert result.exit_code == 0, result.output
    for run_id in run_ids:
        for args in (
            ("report", run_id),
            ("report", run_id, "--format", "json"),
            ("inspect", "state", run_id),
            ("inspect", "state", run_id, "--json"),
            ("inspect", "snapshot", run_id),
            ("inspect", "evaluation", run_id, "--case", "zero"),
            ("inspect", "evaluation", run_id, "--case", "ok", "--json"),
        ):
            result = invoke(*args, "--store", store)
            assert result.exit_code == 0, (args, result.output)
            assert "Traceback" not in result.output


def test_a_stored_run_that_was_never_executed_can_be_read(
    broken: tuple[str, str], store: Path, invoke: Invoke
) -> None:
    _every_reading_command_works(invoke, store, broken)


def test_resuming_fails_the_unrenderable_trial_with_its_reason(
    broken: tuple[str, str], store: Path, invoke: Invoke
) -> None:
    unrenderable, _ = broken
    result = output_json(invoke("resume", unrenderable, "--store", store, "--json"))
    assert result["trials_executed"] == 2
    assert result["model_calls"] == 1  # the case that renders; none for the one that does not
    (row,) = result["results"]
    assert row["failed"] == 1
    state = output_json(invoke("inspect", "state", unrenderable, "--store", store, "--json"))
    text = json.dumps(state)
    assert "unrenderable" in text
    assert "prompt 'p', case 'zero': ZeroDivisionError: integer division or modulo by zero" in text
    _every_reading_command_works(invoke, store, broken)


def test_resuming_records_an_uncompilable_pattern_as_the_parse_error(
    broken: tuple[str, str], store: Path, invoke: Invoke
) -> None:
    _, unparsable = broken
    result = output_json(invoke("resume", unparsable, "--store", store, "--json"))
    (row,) = result["results"]
    assert row["unparsed"] == 1
    view = output_json(
        invoke("inspect", "evaluation", unparsable, "--case", "ok", "--store", store, "--json")
    )
    (trial,) = view["trials"]
    assert trial["parse"]["error"].startswith(
        "invalid pattern 'answer (\\\\d+': missing ), unterminated subpattern"
    )
    # and a later resume is no crash either: the run is complete through score
    again = output_json(invoke("resume", unparsable, "--store", store, "--json"))
    assert again["reused"] is True
    _every_reading_command_works(invoke, store, broken)


def test_the_api_reads_and_resumes_a_stored_broken_run(
    broken: tuple[str, str], store: Path
) -> None:
    unrenderable, _ = broken
    experiment = Experiment.from_store(unrenderable, store)
    assert experiment.run_id == unrenderable
    outcome = experiment.resume(store)
    assert outcome.status == "completed"
    assert outcome.report.rows[0].failed == 1

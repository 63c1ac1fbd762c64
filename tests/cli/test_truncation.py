"""Answers cut at `max_tokens` (`finish_reason = length`) are counted wherever failures are."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import Invoke, output_json, trimmed
from tests.cli.test_cli import RunJson
from themis.app.usecases.runs import load_state
from themis.app.wiring import opened_store

# The scripted model's answer is "The answer is N." (4 words, a word per token): with
# max_tokens = 3 every answer of the weak model is cut to "The answer is".
CUT = ("--set", "models.weak.params.max_tokens=3")


def test_the_report_counts_truncated_trials(demo: Path, run_json: RunJson) -> None:
    data = run_json(demo, *CUT)
    assert data["trials"]["truncated"] == 144
    for row in data["results"]:
        truncated = 72 if row["model"] == "weak" else 0
        assert row["truncated"] == truncated
        if row["model"] == "weak":  # cut before the number: unparsed, scored as cut
            assert (row["unparsed"], row["mean"]) == (72, 0.0)


def test_the_table_and_inspect_state_show_them(demo: Path, store: Path, invoke: Invoke) -> None:
    run = invoke("run", demo, "--store", store, *CUT)
    assert run.exit_code == 0, run.output
    table = trimmed(run.stdout)
    header = next(line for line in table.splitlines() if "unparsed" in line)
    assert "truncated" in header  # a column of the table
    assert "144 truncated (cut at max_tokens)" in table
    run_id = output_json(invoke("run", demo, "--store", store, "--json", *CUT))["run_id"]
    state = output_json(invoke("inspect", "state", run_id, "--store", store, "--json"))
    assert state["truncated"] == 144
    shown = invoke("inspect", "state", run_id, "--store", store)
    assert "truncated: 144 generations cut at max_tokens" in shown.stdout
    with opened_store(store, read_only=True) as opened:
        state_now, _ = load_state(opened, run_id)
    reasons = {generation.finish_reason for generation in state_now.generations.values()}
    assert reasons == {"length", "stop"}


def test_a_run_without_cut_answers_says_zero(demo: Path, run_json: RunJson) -> None:
    data = run_json(demo)
    assert data["trials"]["truncated"] == 0
    assert {row["truncated"] for row in data["results"]} == {0}

"""The judge stage from the CLI: a judged run's JSON report, `--until-stage judge`, replays that
make no generation call (counted per model in the scripted provider's journal), and one-line
errors for judges that cannot work."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner, Result

from tests.cli.conftest import EXAMPLES, PINNED_ENV
from tests.cli.helpers import Invoke, one_error_line, output_json
from themis.app.cli import app

RUN_ID = "b326f691f406"


@pytest.fixture
def judged(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    return Path(shutil.copy(EXAMPLES / "judge.toml", tmp_path / "judge.toml"))


def _journaled(journal: Path, *args: object) -> Result:
    env = {**PINNED_ENV, "THEMIS_FAKE_JOURNAL": str(journal)}
    return CliRunner().invoke(app, [str(arg) for arg in args], env=env)


def _calls(journal: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if journal.exists():
        for line in journal.read_text().splitlines():
            model = json.loads(line)["model"]
            counts[model] = counts.get(model, 0) + 1
    return counts


def test_a_judged_run_reports_judge_rows_and_agreement(
    invoke: Invoke, judged: Path, store: Path
) -> None:
    report = output_json(invoke("run", judged, "--store", store, "--json"))
    assert report["run_id"].startswith(RUN_ID)
    assert report["completed_through_stage"] == "judge"
    judge_rows = [row for row in report["results"] if "judge_failed" in row]
    assert [(row["model"], row["metric"], row["n"]) for row in judge_rows] == [
        ("careful", "quality", 8),
        ("hasty", "quality", 8),
    ]
    statistics = [item["statistic"] for item in report["agreement"]]
    assert statistics == [
        "fleiss_kappa",
        "krippendorff_alpha_nominal",
        "krippendorff_alpha_ordinal",
        "krippendorff_alpha_interval",
        "human_cohen_kappa",
        "human_krippendorff_alpha_interval",
    ]
    assert report["model_calls"] == 16 + 64
    table = invoke("report", RUN_ID, "--store", store)
    assert table.exit_code == 0, table.output
    assert "judge agreement" in table.stdout
    assert "judge failed" in table.stdout


def test_stopping_before_judging_then_judging_and_replaying_make_no_generation_call(
    judged: Path, store: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "calls.jsonl"
    first = _journaled(journal, "run", judged, "--store", store, "--until-stage", "score", "-q")
    assert first.exit_code == 0, first.output
    assert "completed through score" in first.stdout
    assert _calls(journal) == {"fake-careful": 8, "fake-hasty": 8}
    journal.unlink()
    second = _journaled(journal, "run", judged, "--store", store, "--until-stage", "judge", "-q")
    assert second.exit_code == 0, second.output
    assert _calls(journal) == {"fake-judge-a": 32, "fake-judge-b": 32}
    journal.unlink()
    replayed = _journaled(journal, "replay", RUN_ID, "--stage", "judge", "--store", store, "-q")
    assert replayed.exit_code == 0, replayed.output
    assert _calls(journal) == {}
    assert "completed through judge" in replayed.stdout
    # A changed judge is a derived run: the stored generations are reused, the judge is called.
    derived = _journaled(
        journal,
        "replay",
        RUN_ID,
        "--stage",
        "judge",
        "--store",
        store,
        "--config",
        judged,
        "--json",
        "--set",
        "judges.quality.repeats=3",
    )
    report = output_json(derived)
    assert not report["run_id"].startswith(RUN_ID)
    assert _calls(journal) == {"fake-judge-a": 16, "fake-judge-b": 16}  # the third repeats only


def test_judges_that_cannot_work_are_refused_in_one_line(
    invoke: Invoke, judged: Path, store: Path, tmp_path: Path
) -> None:
    line = one_error_line(
        invoke("run", judged, "--store", store, "--set", "judges.quality.template='{{ questin }}'")
    )
    assert "judges[0].template" in line
    assert "questin" in line
    assert "did you mean 'question'" in line
    line = one_error_line(
        invoke("run", judged, "--store", store, "--set", "judges.quality.verdict.kind='stars'")
    )
    assert "judges[0].verdict.kind" in line
    line = one_error_line(
        invoke("run", judged, "--store", store, "--set", "judges.quality.human_field='humn'")
    )
    assert "judges[0].human_field" in line
    demo = shutil.copy(EXAMPLES / "demo.toml", tmp_path / "demo.toml")
    line = one_error_line(invoke("run", demo, "--store", store, "--until-stage", "judge"))
    assert line == "error: until_stage: judge needs at least one [[judges]] entry"
    assert not store.exists()


def test_the_csv_report_appends_the_judge_agreement_as_rows(
    invoke: Invoke, judged: Path, store: Path, snapshot: SnapshotAssertion
) -> None:
    report = output_json(invoke("run", judged, "--store", store, "--json", "--quiet"))
    text = invoke("report", RUN_ID, "--store", store, "--format", "csv").stdout
    assert text == snapshot
    rows = list(csv.DictReader(io.StringIO(text)))
    agreement = [row for row in rows if row["metric"].startswith("agreement:")]
    assert [
        (row["metric"], float(row["mean"]), int(row["n"]), int(row["raters"]))
        for row in agreement
    ] == [
        (f"agreement:{item['statistic']}({item['judge']})", item["value"], item["items"],
         item["raters"])
        for item in report["agreement"]
    ]  # fmt: skip
    assert {row["raters"] for row in rows if row not in agreement} == {""}

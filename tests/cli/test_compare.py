"""`themis compare`: two runs, or two models within one, in every format (syrupy snapshots).

Run A is the demo with one sample per case (so 0/1 pairs: McNemar), run B the same with a
better weak model; within run A the demo's two models are compared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

import themis
from tests.cli.helpers import Invoke, one_error_line, output_json, trimmed

ONE_SAMPLE = ("--set", "samples=1", "--quiet")


@pytest.fixture
def two_runs(demo: Path, store: Path, invoke: Invoke) -> tuple[str, str]:
    ids = []
    for extra in ((), ("--set", "models.weak.options.skill=0.75")):
        result = invoke("run", demo, "--store", store, "--json", *ONE_SAMPLE, *extra)
        ids.append(output_json(result)["run_id"])
    return ids[0], ids[1]


@pytest.mark.parametrize("format_", ["table", "md", "latex", "json"])
def test_compare_two_runs(
    two_runs: tuple[str, str],
    store: Path,
    invoke: Invoke,
    snapshot: SnapshotAssertion,
    format_: str,
) -> None:
    run_a, run_b = two_runs
    result = invoke("compare", run_a[:8], run_b[:8], "--store", store, "--format", format_)
    assert result.exit_code == 0, result.output
    assert trimmed(result.stdout) == snapshot


def test_compare_json_is_the_api_comparison(
    two_runs: tuple[str, str], store: Path, invoke: Invoke
) -> None:
    run_a, run_b = two_runs
    data = output_json(invoke("compare", run_a, run_b, "--store", store, "--format", "json"))
    api = themis.compare(run_a, run_b, store=store)
    assert [row["p_value"] for row in data["rows"]] == [row.p_value for row in api.rows]
    assert {row["test"] for row in data["rows"]} == {"mcnemar-exact"}
    # The strong model did not change: its answers, hence its scores, are the same in both runs.
    strong = [row for row in data["rows"] if "strong" in row["group"]]
    assert {row["delta"] for row in strong} == {0.0}
    assert data["unpaired_cases"] == 0


def test_compare_models_within_a_run(
    demo: Path, store: Path, invoke: Invoke, tmp_path: Path
) -> None:
    run_id = output_json(invoke("run", demo, "--store", store, "--json", "--quiet"))["run_id"]
    output = tmp_path / "compare.md"
    result = invoke(
        "compare", run_id, "--models", "strong,weak", "--store", store, "--format", "md",
        "--output", output,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = output.read_text()
    assert "| arithmetic / direct | exact_match | 24 |" in text
    assert "sign-flip" in text  # three samples per case: clustered, not McNemar
    seeded = [
        json.loads(invoke("compare", run_id, "--prompts", "direct,reasoning", "--store", store,
                          "--format", "json", "--seed", "3").stdout)
        for _ in range(2)
    ]  # fmt: skip
    assert seeded[0] == seeded[1]
    assert seeded[0]["resampling"]["seed"] == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--models", "strong"), "--models: give two names separated by a comma"),
        (("--models", "strong,nope"), "the run has no model 'nope' (it has: strong, weak)"),
        (("--models", "strong,weak", "--prompts", "a,b"), "give --models or --prompts, not both"),
        ((), "give a second RUN, or --models a,b or --prompts x,y"),
    ],
)
def test_compare_refuses_what_it_cannot_pair(
    demo: Path, store: Path, invoke: Invoke, extra: tuple[str, ...], message: str
) -> None:
    run_id = output_json(invoke("run", demo, "--store", store, "--json", *ONE_SAMPLE))["run_id"]
    assert message in one_error_line(invoke("compare", run_id, *extra, "--store", store))


def test_compare_two_runs_refuses_within_run_options(
    two_runs: tuple[str, str], store: Path, invoke: Invoke
) -> None:
    line = one_error_line(invoke("compare", *two_runs, "--models", "a,b", "--store", store))
    assert "compare within one run: give one RUN, not two" in line


def test_report_adds_the_comparison_of_a_second_run(
    two_runs: tuple[str, str], store: Path, invoke: Invoke
) -> None:
    run_a, run_b = two_runs
    markdown = invoke("report", run_a, "--compare", run_b, "--store", store, "--format", "md")
    assert markdown.exit_code == 0, markdown.output
    assert f"**compare** · A `{run_a[:12]}` · B `{run_b[:12]}`" in markdown.stdout
    data = output_json(
        invoke("report", run_a, "--compare", run_b, "--store", store, "--format", "json")
    )
    assert (
        data["comparison"]
        == themis.Reporter(run_a, store, compare_to=run_b).to_json()["comparison"]
    )
    line = one_error_line(invoke("report", run_a, "--compare", run_b, "--store", store))
    assert "a comparison is rendered in html, md, latex or json, not table" in line
    within = one_error_line(invoke("compare", run_a, "--store", store, "--format", "html"))
    assert "--format html: give two runs" in within


def test_cases_one_side_has_not_scored_are_counted_not_dropped(
    demo: Path, store: Path, invoke: Invoke
) -> None:
    scored = output_json(invoke("run", demo, "--store", store, "--json", *ONE_SAMPLE))["run_id"]
    other = ("--set", "models.weak.options.skill=0.75", "--until-stage", "generate")
    partial = invoke("run", demo, "--store", store, "--json", *ONE_SAMPLE, *other)
    unscored = output_json(partial)["run_id"]
    data = output_json(invoke("compare", scored, unscored, "--store", store, "--format", "json"))
    # Run B stopped after generating: no case is scored on its side, every row says so.
    assert len(data["rows"]) == 8  # 2 models × 2 prompts × 2 metrics
    assert {(row["n"], row["only_a"], row["only_b"], row["test"]) for row in data["rows"]} == {
        (0, 24, 0, "none")
    }
    assert data["unpaired_cases"] == 8 * 24
    text = invoke("compare", scored, unscored, "--store", store).stdout
    assert "unpaired cases (scored on one side only, left out): 192" in text


def _rows_by_metric(data: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    rows: dict[str, list[dict[str, object]]] = {}
    for row in data["rows"]:  # type: ignore[attr-defined]
        rows.setdefault(row["metric"], []).append(row)
    return rows


def test_compare_pairs_pass_at_k_and_majority_rows_by_case(
    demo: Path, store: Path, invoke: Invoke
) -> None:
    sampled = ("--set", "pass_at_k=[1,3]", "--set", "majority_at_k=[3]", "--quiet")
    report = output_json(invoke("run", demo, "--store", store, "--json", *sampled))
    data = output_json(
        invoke("compare", report["run_id"], "--models", "strong,weak", "--store", store,
               "--format", "json")
    )  # fmt: skip
    rows = _rows_by_metric(data)
    assert {"pass@1(exact_match)", "pass@3(exact_match)", "majority@3(exact_match)"} <= set(rows)
    # majority@3 is one 0/1 value per case: McNemar; pass@1 is a share of samples: sign-flip.
    assert {row["test"] for row in rows["majority@3(exact_match)"]} == {"mcnemar-exact"}
    assert {row["test"] for row in rows["pass@1(exact_match)"]} == {"sign-flip"}
    # Each side's mean is the report's row for that model; Holm spans every row.
    means = {(r["model"], r["prompt"], r["metric"]): r["mean"] for r in report["results"]}
    for row in rows["pass@3(exact_match)"]:
        _, prompt = row["group"].split(" / ")
        assert row["mean_a"] == pytest.approx(means[("strong", prompt, row["metric"])])
        assert row["mean_b"] == pytest.approx(means[("weak", prompt, row["metric"])])
        assert row["n"] == 24
        assert row["p_holm"] >= row["p_value"]


def test_compare_pairs_judge_rows_leaving_judge_failures_out(
    tmp_path: Path, store: Path, invoke: Invoke
) -> None:
    examples = Path(__file__).parents[2] / "examples"
    shutil.copytree(examples / "data", tmp_path / "data")
    judged = Path(shutil.copy(examples / "judge.toml", tmp_path / "judge.toml"))
    # judge-b never gives a verdict and judge-a only now and then: some candidates have none.
    flaky = (
        "--set", 'judges.0.models.0.options.responses=["VERDICT: correct", "I cannot tell."]',
        "--set", 'judges.0.models.1.options.responses=["I cannot tell."]',
    )  # fmt: skip
    report = output_json(invoke("run", judged, "--store", store, "--json", "--quiet", *flaky))
    data = output_json(
        invoke("compare", report["run_id"], "--models", "careful,hasty", "--store", store,
               "--format", "json")
    )  # fmt: skip
    (row,) = _rows_by_metric(data)["quality"]
    judge_rows = {r["model"]: r for r in report["results"] if r["metric"] == "quality"}
    careful, hasty = judge_rows["careful"], judge_rows["hasty"]
    assert careful["judge_failed"] > 0
    assert hasty["judge_failed"] > 0
    # A judge failure is no case value: its case is unpaired, never a 0 paired with the other.
    assert row["n"] + row["only_a"] == careful["n"] < 8
    assert row["n"] + row["only_b"] == hasty["n"] < 8
    assert (row["mean_a"], row["mean_b"]) == (careful["mean"], hasty["mean"]) == (1.0, 1.0)
    assert row["test"] == "mcnemar-exact"  # one 0/1 verdict score per case and side


def test_the_html_comparison_shows_the_sampled_rows(
    demo: Path, store: Path, invoke: Invoke, tmp_path: Path
) -> None:
    sampled = ("--set", "pass_at_k=[1,3]", "--set", "majority_at_k=[3]", "--quiet")
    ids = [
        output_json(invoke("run", demo, "--store", store, "--json", *sampled, *extra))["run_id"]
        for extra in ((), ("--set", "models.weak.options.skill=0.75"))
    ]
    page = tmp_path / "compare.html"
    result = invoke(
        "compare", ids[0], ids[1], "--store", store, "--format", "html", "--output", page
    )
    assert result.exit_code == 0, result.output
    section = page.read_text().split('id="comparison"', 1)[1]
    for metric in ("pass@1(exact_match)", "pass@3(exact_match)", "majority@3(exact_match)"):
        assert f"· {metric}" in section  # a point of the difference plot
    # 2 models × 2 prompts × 2 metrics × (the metric, pass@1, pass@3, majority@3)
    assert section.count('class="delta"') == 32

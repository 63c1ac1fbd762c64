"""Stage bundles, provider batch files and imported answers, through the public API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import themis
from tests.app.test_orchestrator import CountingModel, config
from themis import ModelRequest, ModelResponse, Orchestrator, ProjectSpec, StorageSpec


def orchestrator_on(path: Path | str, model: Any = None) -> Orchestrator:
    project = ProjectSpec(storage=StorageSpec(path=str(path)), global_seed=5)
    return Orchestrator(project, models={"fake": model or CountingModel()})


class Refusing:
    """A model that must not be called."""

    calls = 0

    async def generate(self, request: ModelRequest) -> ModelResponse:
        type(self).calls += 1
        raise AssertionError("a model was called")


@pytest.fixture
def store_a(tmp_path: Path) -> Orchestrator:
    with orchestrator_on(tmp_path / "a.duckdb") as orchestrator:
        orchestrator.run(config())
        yield orchestrator


@pytest.mark.parametrize("name", ["gen-bundle", "gen-bundle.jsonl", "gen-bundle.parquet"])
def test_generation_round_trip_gives_store_b_the_report_of_store_a(
    store_a: Orchestrator, tmp_path: Path, name: str
) -> None:
    run_id = store_a.experiment(config()).run_id
    manifest = store_a.export_generation_bundle(run_id, tmp_path / name)
    assert (manifest.run_id, manifest.kind, manifest.rows) == (run_id, "generation", 4)
    refusing = Refusing()
    with orchestrator_on(tmp_path / "b.duckdb", refusing) as store_b:
        imported = store_b.import_generation_bundle(tmp_path / name, into=run_id[:8])
        assert (imported.run_id, imported.imported, imported.already_held) == (run_id, 4, 0)
        again = store_b.import_bundle(tmp_path / name)
        assert (again.imported, again.already_held) == (0, 4)  # a no-op
        result = store_b.run(config())  # parse and score; every generation is imported
        assert result.report == store_a.report(run_id)
        assert (result.model_calls, Refusing.calls) == (0, 0)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_evaluation_bundle_carries_parses_and_scores(
    store_a: Orchestrator, tmp_path: Path, suffix: str
) -> None:
    run_id = store_a.experiment(config()).run_id
    store_a.export_generation_bundle(run_id, tmp_path / "g")
    store_a.export_evaluation_bundle(run_id, tmp_path / f"e{suffix}")
    with orchestrator_on("memory", Refusing()) as store_b:
        store_b.import_bundle(tmp_path / "g")
        outcome = store_b.import_evaluation_bundle(tmp_path / f"e{suffix}")
        assert outcome.imported == 8  # 4 parses + 4 scores
        assert store_b.import_evaluation_bundle(tmp_path / f"e{suffix}").imported == 0
        progress = store_b.get_run_progress(run_id)
        assert (progress.status, progress.done) == ("planned", 4)  # imported, never run
        resumed = store_b.resume(run_id)  # nothing left to do: completes without a call
        assert resumed.report == store_a.report(run_id)


@pytest.mark.parametrize("kind", ["parse", "score", "reduction"])
def test_each_stage_exports_its_own_rows(store_a: Orchestrator, tmp_path: Path, kind: str) -> None:
    run_id = store_a.experiment(config()).run_id
    manifest = store_a.export_bundle(run_id, kind, tmp_path / kind)
    assert manifest.rows == (0 if kind == "reduction" else 4)
    rows = (tmp_path / kind / "rows.jsonl").read_text().splitlines()
    assert {json.loads(row)["kind"] for row in rows} <= {
        "parse_completed",
        "score_completed",
        "reduction_completed",
    }


@pytest.mark.parametrize("kind", ["generation", "reduction", "parse", "score", "evaluation"])
def test_every_kind_exports_to_parquet_with_the_jsonl_manifest_and_rows(
    store_a: Orchestrator, tmp_path: Path, kind: str
) -> None:
    import duckdb

    run_id = store_a.experiment(config()).run_id
    as_jsonl = store_a.export_bundle(run_id, kind, tmp_path / f"{kind}.jsonl")
    as_parquet = store_a.export_bundle(run_id, kind, tmp_path / f"{kind}.parquet")
    assert as_parquet == as_jsonl  # the same count and SHA-256 of the same rows
    rows = duckdb.sql(
        f"SELECT kind, event FROM read_parquet('{tmp_path / kind}.parquet') ORDER BY line"
    ).fetchall()
    lines = (tmp_path / f"{kind}.jsonl").read_text().splitlines()[1:]
    assert [(kind, json.loads(event)) for kind, event in rows] == [
        (json.loads(line)["kind"], json.loads(line)["event"]) for line in lines
    ]
    with orchestrator_on("memory", Refusing()) as store_b:
        first = store_b.import_bundle(tmp_path / f"{kind}.parquet")
        again = store_b.import_bundle(tmp_path / f"{kind}.parquet")
        assert (first.imported, again.imported, again.already_held) == (
            as_parquet.rows,
            0,
            as_parquet.rows,
        )


def test_an_edited_parquet_bundle_is_refused_and_nothing_is_written(
    store_a: Orchestrator, tmp_path: Path
) -> None:
    import duckdb

    run_id = store_a.experiment(config()).run_id
    path, edited = tmp_path / "g.parquet", tmp_path / "edited.parquet"
    store_a.export_generation_bundle(run_id, path)
    with duckdb.connect() as con:
        (manifest,) = con.execute(
            "SELECT decode(value) FROM parquet_kv_metadata(?)", [str(path)]
        ).fetchone()
        con.execute(
            f'COPY (SELECT line, kind, replace(event, \'"text":"0"\', \'"text":"1"\')'
            f" AS event FROM read_parquet('{path}') ORDER BY line) TO '{edited}'"
            " (FORMAT PARQUET, KV_METADATA {themis_manifest: $$" + manifest + "$$})"
        )
    with orchestrator_on("memory") as store_b:
        with pytest.raises(themis.ThemisError, match="do not match the manifest"):
            store_b.import_bundle(edited)
        assert store_b.runs() == []
    (tmp_path / "plain.parquet").write_bytes(b"PAR1 not really")
    with orchestrator_on("memory") as store_b:
        with pytest.raises(themis.ThemisError, match=r"plain\.parquet: not a readable") as caught:
            store_b.import_bundle(tmp_path / "plain.parquet")
        assert "\n" not in str(caught.value)


def test_a_bundle_of_another_run_is_refused_in_one_line(
    store_a: Orchestrator, tmp_path: Path
) -> None:
    run_id = store_a.experiment(config()).run_id
    store_a.export_generation_bundle(run_id, tmp_path / "g")
    other = store_a.experiment(config(samples=2)).run_id
    with pytest.raises(themis.ThemisError, match=r"not of run") as caught:
        store_a.import_bundle(tmp_path / "g", into=other)
    assert "\n" not in str(caught.value)


def test_an_edited_bundle_is_refused_and_nothing_is_written(
    store_a: Orchestrator, tmp_path: Path
) -> None:
    run_id = store_a.experiment(config()).run_id
    path = tmp_path / "g.jsonl"
    store_a.export_generation_bundle(run_id, path)
    path.write_text(path.read_text().replace('"text":"0"', '"text":"1"'))
    with orchestrator_on("memory") as store_b:
        with pytest.raises(themis.ThemisError, match="do not match the manifest"):
            store_b.import_bundle(path)
        assert store_b.runs() == []


def test_export_never_replaces_an_existing_path(store_a: Orchestrator, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(themis.ThemisError, match="already exists"):
        store_a.export_bundle(store_a.runs()[0].run_id, "generation", tmp_path / "taken")


def test_an_unknown_kind_is_a_config_error(store_a: Orchestrator, tmp_path: Path) -> None:
    with pytest.raises(themis.ConfigError, match="bundle kind: must be one of generation"):
        store_a.export_bundle(store_a.runs()[0].run_id, "judge", tmp_path / "x")


# --- provider batches ----------------------------------------------------------------------


def openai_output(requests: list[dict[str, Any]], *, fail: int = 0) -> str:
    """What the Batch API returns for `requests`: the sum each prompt asks for; the first
    `fail` of them failed."""
    lines = []
    for index, request in enumerate(requests):
        answer = request["body"]["messages"][-1]["content"].split("=")[-1].strip()
        line: dict[str, Any] = {"id": f"batch_req_{index}", "custom_id": request["custom_id"]}
        if index < fail:
            line |= {"response": None, "error": {"code": "server_error", "message": "boom"}}
        else:
            body = {
                "id": f"chatcmpl-{index}",
                "model": "gpt-batch",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 1},
            }  # fmt: skip
            line |= {"response": {"status_code": 200, "body": body}, "error": None}
        lines.append(json.dumps(line))
    return "\n".join(lines) + "\n"


def anthropic_output(requests: list[dict[str, Any]]) -> str:
    lines = []
    for request in requests:
        answer = request["params"]["messages"][-1]["content"].split("=")[-1].strip()
        message = {
            "id": "msg_1",
            "type": "message",
            "model": "claude-batch",
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 9, "output_tokens": 1},
        }
        result = {"type": "succeeded", "message": message}
        lines.append(json.dumps({"custom_id": request["custom_id"], "result": result}))
    return "\n".join(lines) + "\n"


def test_openai_batch_export_then_output_import_completes_the_run_with_zero_calls(
    tmp_path: Path,
) -> None:
    with orchestrator_on(tmp_path / "s.duckdb", Refusing()) as orchestrator:
        written = orchestrator.export_batch(config(), tmp_path / "in.jsonl", "openai")
        requests = [json.loads(line) for line in (tmp_path / "in.jsonl").read_text().splitlines()]
        assert written == len(requests) == 4
        assert {request["url"] for request in requests} == {"/v1/chat/completions"}
        (tmp_path / "out.jsonl").write_text(openai_output(requests, fail=1))
        imported = orchestrator.import_batch(config(), tmp_path / "out.jsonl", "openai")
        assert (imported.imported, len(imported.failures)) == (3, 1)
        # The failed request stays pending: exported again, alone.
        assert orchestrator.export_batch(config(), tmp_path / "retry.jsonl") == 1
        retry = [json.loads(line) for line in (tmp_path / "retry.jsonl").read_text().splitlines()]
        (tmp_path / "retry-out.jsonl").write_text(openai_output(retry))
        assert orchestrator.import_batch(config(), tmp_path / "retry-out.jsonl").imported == 1
        result = orchestrator.run(config())
    assert (result.status, result.model_calls, Refusing.calls) == ("completed", 0, 0)
    assert result.report.rows[0].mean == 1.0
    assert result.report.served[0].served == {"gpt-batch": 4}


def test_anthropic_batch_round_trip(tmp_path: Path) -> None:
    with orchestrator_on("memory", Refusing()) as orchestrator:
        orchestrator.export_batch(config(), tmp_path / "in.jsonl", "anthropic")
        requests = [json.loads(line) for line in (tmp_path / "in.jsonl").read_text().splitlines()]
        assert set(requests[0]) == {"custom_id", "params"}
        assert requests[0]["params"]["model"] == "fake-model"
        (tmp_path / "out.jsonl").write_text(anthropic_output(requests))
        imported = orchestrator.import_batch(config(), tmp_path / "out.jsonl", "anthropic")
        assert imported.imported == 4
        result = orchestrator.run(config())
    assert (result.report.scored, result.model_calls) == (4, 0)


def test_batch_output_of_another_run_is_refused_naming_the_line(tmp_path: Path) -> None:
    with orchestrator_on("memory") as orchestrator:
        (tmp_path / "out.jsonl").write_text(json.dumps({"custom_id": "nope"}) + "\n")
        with pytest.raises(themis.ThemisError, match=r"line 1: custom_id 'nope' is not a pend"):
            orchestrator.import_batch(config(), tmp_path / "out.jsonl")


# --- answers from elsewhere --------------------------------------------------------------------


def test_import_candidates_records_answers_as_trials(tmp_path: Path) -> None:
    with orchestrator_on("memory", Refusing()) as orchestrator:
        records = [{"case_id": f"c{i}", "text": str(2 * i if i else 7)} for i in range(4)]
        outcome = orchestrator.import_candidates(config(), records)
        assert outcome.imported == 4
        assert orchestrator.import_candidates(config(), records).imported == 0
        result = orchestrator.evaluate(config())
    assert (result.report.rows[0].mean, result.model_calls) == (0.75, 0)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"case_id": "c9", "text": "1"}, r"candidates\[0\]: no trial of run .* has case 'c9'"),
        ({"case_id": "c1", "text": "1", "model": "x"}, r"candidates\[0\]\.model: 'x' is not"),
        ({"case_id": "c1", "answer": "1"}, r"candidates\[0\]\.answer: unknown field"),
    ],
)
def test_a_candidate_that_matches_no_trial_is_a_one_line_error(
    record: dict[str, Any], message: str
) -> None:
    with orchestrator_on("memory") as orchestrator:
        with pytest.raises(themis.ConfigError, match=message):
            orchestrator.import_candidates(config(), [record])
        assert orchestrator.runs() == []


def test_a_judged_run_moves_whole_with_its_generation_and_evaluation_bundles(
    tmp_path: Path,
) -> None:
    from tests.app.test_judge_stage import Models, judged_spec
    from themis.core.spec import VerdictSpec

    # Floats, as a config file gives them: an int here would not survive the snapshot codec.
    spec = judged_spec(verdict=VerdictSpec(kind="scale", min=0.0, max=1.0))
    with orchestrator_on("memory", Models()) as store_a:
        first = store_a.run(spec)
        assert first.completed_through_stage == "judge"
        store_a.export_generation_bundle(first.run_id, tmp_path / "g.jsonl")
        manifest = store_a.export_evaluation_bundle(first.run_id, tmp_path / "e.parquet")
        assert manifest.rows > 0
        report_a = store_a.report(first.run_id)
    with orchestrator_on("memory", Refusing()) as store_b:
        store_b.import_bundle(tmp_path / "g.jsonl")
        store_b.import_bundle(tmp_path / "e.parquet")
        assert store_b.import_bundle(tmp_path / "e.parquet").imported == 0
        second = store_b.run(spec)
        assert (second.model_calls, Refusing.calls) == (0, 0)
        assert second.report == report_a


def test_evaluate_judges_stored_generations_calling_only_the_judge() -> None:
    from tests.app.test_judge_stage import Models, judged_spec

    models = Models()
    with orchestrator_on("memory", models) as orchestrator:
        orchestrator.generate(judged_spec())
        under_test = {name: n for name, n in models.calls.items() if name != "fake-judge"}
        judged = orchestrator.evaluate(judged_spec())
    assert judged.completed_through_stage == "judge"
    assert {name: n for name, n in models.calls.items() if name != "fake-judge"} == under_test
    assert models.calls["fake-judge"] > 0


# --- the seed's import_generation_results / import_evaluation_results ----------------------


def test_generation_and_evaluation_results_made_elsewhere_complete_the_run(tmp_path: Path) -> None:
    refusing = Refusing()
    with orchestrator_on(tmp_path / "x.duckdb", refusing) as orchestrator:
        answers = [{"case_id": f"c{i}", "text": str(2 * i)} for i in range(4)]
        generated = orchestrator.import_generation_results(config(), answers)
        assert (generated.imported, generated.already_held) == (4, 0)
        scores = [
            {"case_id": f"c{i}", "scores": {"exact_match": float(i % 2)}, "answer": str(2 * i)}
            for i in range(4)
        ]
        evaluated = orchestrator.import_evaluation_results(config(), scores)
        assert evaluated.imported == 8  # a parse and a score per trial
        again = orchestrator.import_evaluation_results(config(), scores)
        assert (again.imported, again.already_held) == (0, 4)  # parses held: only scores sent
        result = orchestrator.run(config())  # nothing left to do: no call
        assert (result.status, result.model_calls, Refusing.calls) == ("completed", 0, 0)
        assert result.report.rows[0].mean == 0.5  # the imported scores, not recomputed ones
        assert result.report.scored == 4


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [{"case_id": "c0", "scores": {"f1": 1.0}}],
            "evaluations[0].scores: must score exactly the run's metrics (exact_match), got f1",
        ),
        (
            [{"case_id": "c0", "scores": {"exact_match": 2.0}}],
            "evaluations[0].scores.exact_match: must be in [0, 1], got 2",
        ),
        (
            [{"case_id": "nope", "scores": {"exact_match": 1.0}}],
            "evaluations[0]: no trial of run",
        ),
        (
            [{"case_id": "c3", "scores": {"exact_match": 1.0}}],
            "evaluations[0]: the trial of case 'c3' has no stored generation",
        ),
    ],
)
def test_evaluation_results_are_checked_in_one_line(
    tmp_path: Path, records: list[dict[str, Any]], message: str
) -> None:
    with orchestrator_on(tmp_path / "x.duckdb") as orchestrator:
        orchestrator.import_generation_results(config(), [{"case_id": "c0", "text": "0"}])
        with pytest.raises(themis.ConfigError) as raised:
            orchestrator.import_evaluation_results(config(), records)
        assert str(raised.value).startswith(message)
        assert "\n" not in str(raised.value)

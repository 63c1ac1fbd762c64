"""The viewer's pages and JSON endpoints through Starlette's TestClient: every route answers,
shows the numbers `themis report` and `themis compare` compute, escapes model output, answers
unknown runs and cases with 404, and changes nothing in the store."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import themis
from tests.holders import holding, live_record, publish_as
from tests.viewer.conftest import CASES, HOSTILE, ViewerStore, _answer, _spec
from themis.app.api.viewer import viewer_app


@pytest.fixture
def client(viewer_store: ViewerStore) -> Iterator[TestClient]:
    with TestClient(viewer_app(viewer_store.path)) as test_client:
        yield test_client


def test_the_runs_list_shows_every_run(client: TestClient, viewer_store: ViewerStore) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for run_id in (viewer_store.run_a, viewer_store.run_b):
        assert run_id[:16] in page.text
    assert "viewer &lt;b&gt;demo&lt;/b&gt;" in page.text  # a name with markup, escaped

    listed = client.get("/api/runs").json()
    assert listed["live"] is None
    assert [run["run_id"] for run in listed["runs"]] == [viewer_store.run_a, viewer_store.run_b]
    first = listed["runs"][0]
    assert (first["status"], first["planned"], first["failed"]) == ("completed", CASES * 4, 2)
    assert first["headline"].startswith("exact_match 1.000 (alpha")


def test_the_run_page_has_the_reports_numbers_plots_and_failures(
    client: TestClient, viewer_store: ViewerStore
) -> None:
    report = themis.Reporter(viewer_store.run_a, viewer_store.path).report
    page = client.get(f"/runs/{viewer_store.run_a[:8]}")
    assert page.status_code == 200
    for row in report.rows:
        assert f"{row.mean:.3f}" in page.text
    assert page.text.count('<svg class="forest"') == 1
    assert 'class="bars"' in page.text
    assert "bad_request" in page.text
    assert f'href="/runs/{viewer_store.run_a}/cases/n5"' in page.text

    data = client.get(f"/api/runs/{viewer_store.run_a}").json()
    reporter = themis.Reporter(viewer_store.run_a, viewer_store.path)
    assert data["report"]["results"] == reporter.to_json()["results"]
    assert data["failures"] == [{"error_kind": "bad_request", "count": 2, "cases": ["n5"]}]
    assert data["trials"]["total"] == CASES * 4


def test_the_run_page_shows_the_runtime_settings_later_executions_changed(
    client: TestClient, viewer_store: ViewerStore, tmp_path: Path
) -> None:
    unchanged = client.get(f"/runs/{viewer_store.run_a}")
    assert "No later execution changed a runtime setting." in unchanged.text
    assert client.get(f"/api/runs/{viewer_store.run_a}").json()["runtime_changes"] == []

    store = tmp_path / "resumed.duckdb"
    clock = themis.FakeClock()
    experiment = themis.Experiment.from_spec(_spec(1))
    models = {"hostile": themis.ScriptedModel(clock, script=_answer)}
    experiment.run(store, models=models, clock=clock, until_stage="generate")
    experiment.resume(store, models=models, clock=clock, max_concurrent_tasks=3)
    inspected = themis.get_run_snapshot(experiment.run_id, store).lineage
    with TestClient(viewer_app(store)) as resumed:
        data = resumed.get(f"/api/runs/{experiment.run_id}").json()
        page = resumed.get(f"/runs/{experiment.run_id}").text

    default = themis.RuntimeConfig().max_concurrent_tasks
    assert (
        [(change["field"], change["old"], change["new"]) for change in data["runtime_changes"]]
        == [(change.field, change.old, change.new) for change in inspected]
        == [("max_concurrent_tasks", default, 3)]
    )
    assert f"<td>max_concurrent_tasks</td><td>{default} → 3</td>" in page


def test_model_output_is_escaped_everywhere(client: TestClient, viewer_store: ViewerStore) -> None:
    for path in (f"/runs/{viewer_store.run_a}", f"/runs/{viewer_store.run_a}/cases/n2"):
        text = client.get(path).text
        assert "<script>window" not in text
        assert "<img" not in text
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in text
    case = client.get(f"/api/runs/{viewer_store.run_a}/cases/n2").json()
    assert case["trials"][0]["generation"]["text"].startswith(HOSTILE)


def test_trials_paginate_filter_and_sort(client: TestClient, viewer_store: ViewerStore) -> None:
    url = f"/api/runs/{viewer_store.run_a}/trials"
    first = client.get(url, params={"limit": 5}).json()
    second = client.get(url, params={"limit": 5, "offset": 5}).json()
    assert (first["total"], len(first["rows"]), len(second["rows"])) == (CASES * 4, 5, 5)
    assert {row["trial_id"] for row in first["rows"]}.isdisjoint(
        row["trial_id"] for row in second["rows"]
    )
    beta_failed = client.get(url, params={"q": "beta failed"}).json()
    assert beta_failed["total"] == 2
    assert all(row["case_id"] == "n5" for row in beta_failed["rows"])
    by_case = client.get(url, params={"sort": "case_id", "desc": "1", "limit": 1}).json()
    assert by_case["rows"][0]["case_id"] == f"n{CASES - 1}"
    page = client.get(f"/runs/{viewer_store.run_a}", params={"limit": 5, "offset": 5})
    assert "6–10 of 24" in page.text
    assert client.get(url, params={"sort": "nonsense"}).status_code == 400
    assert client.get(url, params={"limit": "many"}).status_code == 400


def test_a_case_shows_every_trial_side_by_side(
    client: TestClient, viewer_store: ViewerStore
) -> None:
    page = client.get(f"/runs/{viewer_store.run_a}/cases/n5")
    assert page.status_code == 200
    assert page.text.count('class="trial"') == 4  # 2 models × 2 samples
    assert "no answer for five" in page.text
    data = client.get(f"/api/runs/{viewer_store.run_a}/cases/n5").json()
    assert {trial["model"] for trial in data["trials"]} == {"alpha", "beta"}


def test_compare_two_runs_and_two_models(client: TestClient, viewer_store: ViewerStore) -> None:
    assert "<form" in client.get("/compare").text
    expected = themis.compare(viewer_store.run_a, models=["alpha", "beta"], store=viewer_store.path)
    within = client.get("/api/compare", params={"a": viewer_store.run_a, "models": "alpha,beta"})
    data = within.json()
    assert [row["delta"] for row in data["comparison"]["rows"]] == [
        row.delta for row in expected.rows
    ]
    # beta is wrong on odd cases and fails on n5: cases n1, n3, n5 differ, each by 1.
    rows = data["disagreements"]["rows"]
    assert sorted(row["case_id"] for row in rows) == ["n1", "n3", "n5"]
    assert all(row["delta"] == -1.0 for row in rows)
    page = client.get("/compare", params={"a": viewer_store.run_a, "b": viewer_store.run_b})
    assert page.status_code == 200
    assert 'class="differences"' in page.text
    assert client.get("/api/compare", params={"a": viewer_store.run_a}).status_code == 400


def test_unknown_runs_and_cases_are_404(client: TestClient, viewer_store: ViewerStore) -> None:
    assert client.get("/runs/ffffffffffff").status_code == 404
    assert client.get("/api/runs/ffffffffffff").json()["error"]
    assert client.get(f"/runs/{viewer_store.run_a}/cases/nope").status_code == 404
    assert client.get(f"/api/runs/{viewer_store.run_a}/cases/nope").status_code == 404
    assert client.get("/static/../../etc/passwd").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_no_route_changes_the_store(client: TestClient, viewer_store: ViewerStore) -> None:
    before = hashlib.sha256(viewer_store.path.read_bytes()).hexdigest()
    run = viewer_store.run_a
    for path in (
        "/",
        f"/runs/{run}",
        f"/runs/{run}/cases/n1",
        f"/compare?a={run}&models=alpha,beta",
        "/api/runs",
        f"/api/runs/{run}",
        f"/api/runs/{run}/trials",
        f"/api/runs/{run}/cases/n1",
        f"/api/compare?a={run}&b={viewer_store.run_b}",
    ):
        assert client.get(path).status_code == 200, path
        assert client.post(path).status_code == 405, path
        assert client.delete(path).status_code == 405, path
    assert hashlib.sha256(viewer_store.path.read_bytes()).hexdigest() == before


def test_a_store_held_by_a_running_process_says_so(
    viewer_store: ViewerStore, tmp_path: Path
) -> None:
    store = Path(shutil.copy(viewer_store.path, tmp_path / "held.duckdb"))
    record = live_record(store, viewer_store.run_a, scored=5)
    with holding(store) as holder, TestClient(viewer_app(store)) as client:
        publish_as(holder.pid, store, record)
        page = client.get("/")
        assert page.status_code == 200
        assert f"held by a running Themis process (PID {holder.pid})" in page.text
        listed = client.get("/api/runs").json()
        assert listed["live"] == {"pid": holder.pid, "viewer": None}
        assert [(run["run_id"], run["scored"]) for run in listed["runs"]] == [
            (viewer_store.run_a, 5)
        ]
        held = client.get(f"/runs/{viewer_store.run_a}")
        assert held.status_code == 503
        assert f"PID {holder.pid}" in held.text


def test_paging_a_comparison_does_not_recompute_it(
    viewer_store: ViewerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from themis.app.api import viewer_data

    calls: list[object] = []
    real = viewer_data.compare_stored

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(viewer_data, "compare_stored", counted)
    query = {"a": viewer_store.run_a, "models": "alpha,beta", "limit": "1"}
    with TestClient(viewer_app(viewer_store.path)) as client:
        first = client.get("/api/compare", params=query).json()
        second = client.get("/api/compare", params={**query, "offset": "1"}).json()
    assert len(calls) == 1
    assert first["comparison"] == second["comparison"]
    assert first["disagreements"]["rows"] != second["disagreements"]["rows"]

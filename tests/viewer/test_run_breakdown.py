"""The run page's breakdown selector: the report's rows regrouped by dataset (a slice is a
dataset of its own), model, prompt or a case field, as `themis report --by` groups them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.viewer.conftest import ViewerStore
from themis.app.api.viewer import viewer_app
from themis.app.render.report_json import document_json
from themis.app.usecases.reporting import report_document
from themis.app.wiring import opened_store
from themis.core.breakdown import Breakdown


@pytest.fixture
def client(viewer_store: ViewerStore) -> Iterator[TestClient]:
    with TestClient(viewer_app(viewer_store.path)) as test_client:
        yield test_client


def _form(page: str) -> str:
    start = page.index('id="breakdown"')
    return page[start : page.index("</form>", start)]


def test_the_form_offers_every_dimension_and_checks_the_current_grouping(
    client: TestClient, viewer_store: ViewerStore
) -> None:
    form = _form(client.get(f"/runs/{viewer_store.run_a}").text)
    for name in ("dataset", "model", "prompt"):
        assert f'value="{name}" checked>' in form
    assert 'value="q">' in form  # the cases' field, offered unchecked

    form = _form(client.get(f"/runs/{viewer_store.run_a}", params=[("by", "model")]).text)
    assert 'value="model" checked>' in form
    assert 'value="dataset">' in form
    assert 'value="prompt">' in form


def test_rows_regroup_as_themis_report_by_groups_them(
    client: TestClient, viewer_store: ViewerStore
) -> None:
    run = viewer_store.run_a
    for by in (["model"], ["prompt"], ["dataset"], ["model", "q"]):
        data = client.get(f"/api/runs/{run}", params=[("by", name) for name in by]).json()
        with opened_store(viewer_store.path, read_only=True) as store:
            expected = document_json(report_document(store, run, Breakdown.of(by)))
        assert data["report"]["results"] == expected["results"]
        assert data["report"]["by"] == list(Breakdown.of(by).dimensions)
    by_model = client.get(f"/api/runs/{run}", params={"by": "model"}).json()["report"]
    assert [(r["dataset"], r["model"], r["prompt"]) for r in by_model["results"]] == [
        ("*", "alpha", "*"),
        ("*", "beta", "*"),
    ]
    page = client.get(f"/runs/{run}", params={"by": "model"}).text
    assert page.count("<td>*</td>") >= 4  # dataset and prompt pooled in both rows


def test_paging_and_searching_keep_the_grouping(
    client: TestClient, viewer_store: ViewerStore
) -> None:
    page = client.get(
        f"/runs/{viewer_store.run_a}", params=[("by", "model"), ("by", "q"), ("limit", "5")]
    ).text
    assert "by=model%2Cq" in page  # the next-page link
    assert '<input type="hidden" name="by" value="model,q">' in page  # the search form


def test_an_unknown_field_is_a_one_line_400(client: TestClient, viewer_store: ViewerStore) -> None:
    answer = client.get(f"/api/runs/{viewer_store.run_a}", params={"by": "nope"})
    assert answer.status_code == 400
    assert "'nope'" in answer.json()["error"]
    assert client.get(f"/runs/{viewer_store.run_a}", params={"by": "nope"}).status_code == 400

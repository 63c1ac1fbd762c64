"""The provenance every report format opens with: versions, config hash, and served-model drift."""

from __future__ import annotations

from themis.app.render.report_text import header_lines, provenance_text, served_text
from themis.app.usecases.reporting import ReportDocument
from themis.core.report import Report, ServedModel


def _document(served: tuple[ServedModel, ...], provenance: dict[str, str]) -> ReportDocument:
    report = Report(
        run_id="ab" * 32,
        name="drift",
        status="completed",
        completed_through_stage=None,
        planned=3,
        scored=3,
        failed=0,
        pending=0,
        rows=(),
        served=served,
    )
    return ReportDocument(
        report=report,
        metrics=(),
        created_at=0.0,
        provenance=provenance,
        themis_version="0.2.0",
    )


def test_served_model_drift_is_marked_per_model() -> None:
    document = _document(
        (
            ServedModel(model="same", requested="m-1", served={"m-1": 3}),
            ServedModel(model="other", requested="m-1", served={"m-1-0613": 3}),
            ServedModel(model="changed", requested="m-1", served={"m-1": 2, "m-2": 1}),
            ServedModel(model="silent", requested="m-1", served={}),
        ),
        {},
    )
    assert served_text(document) == [
        "same: requested m-1, served m-1 (3) (as requested)",
        "other: requested m-1, served m-1-0613 (3) (DRIFT: another model answered)",
        "changed: requested m-1, served m-1 (2), m-2 (1) (DRIFT: several models answered)",
        "silent: requested m-1, served — (no served model id reported)",
    ]


def test_the_header_names_both_versions_the_config_hash_and_the_commit() -> None:
    document = _document(
        (),
        {
            "themis": "0.1.0",
            "config_sha256": "0123456789abcdef" * 4,
            "git_commit": "fedcba9876543210" * 2 + "01234567",
            "git_dirty": "true",
        },
    )
    assert provenance_text(document) == (
        "themis 0.2.0 (the run was made with 0.1.0) · config sha256 0123456789ab · "
        "git fedcba987654 (uncommitted changes)"
    )
    assert header_lines(document)[0] == (
        f"run {'ab' * 32} · completed · created 1970-01-01 00:00:00 UTC"
    )
    bare = _document((), {"themis": "0.2.0"})
    assert provenance_text(bare) == "themis 0.2.0 · config sha256 —"

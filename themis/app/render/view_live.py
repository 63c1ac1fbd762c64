"""The live panel of a run page (`themis run --view`): the stage counts a running process
publishes and the trials it finished last, both refreshed by `live.js` while the run executes.
Every text from the run is escaped, as on every page of the viewer."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from themis.app.render.view_pages import _table, _text, case_href, live_value

_STAGE_COLUMNS = ("planned", "done", "failed", "pending")
_LATEST_HEADERS = ["case", "dataset", "model", "prompt", "sample", "status", "scores or error"]


def live_panel(live: Mapping[str, Any], latest: Mapping[str, Any]) -> str:
    """A running run's stage counts and the trials it finished last, as `/api/live` and
    `/api/runs/{run}/latest` give them; live.js refreshes both while the run executes."""
    run_id = live["run_id"]
    stages = [
        [
            _text(stage),
            *(live_value(run_id, column, counts[column], stage) for column in _STAGE_COLUMNS),
        ]
        for stage, counts in live["stages"].items()
    ]
    rows = []
    for trial in latest["rows"]:
        scores = ", ".join(f"{name} {value:g}" for name, value in trial["scores"].items())
        outcome = trial["error_kind"] if trial["status"] == "failed" else scores
        rows.append(
            [
                f'<a href="{case_href(run_id, trial["case_id"])}">{_text(trial["case_id"])}</a>',
                *(_text(trial[key]) for key in ("dataset", "model", "prompt", "sample", "status")),
                _text(outcome),
            ]
        )
    finished = _table(_LATEST_HEADERS, rows, "latest").replace(
        '<table id="latest">', f'<table id="latest" data-run="{escape(run_id)}">', 1
    )
    source = live["live"] or {}
    return (
        '<section id="live"><h2>Running now</h2>'
        f'<p class="live">Executing in process {_text(source.get("pid"))}; the counts below '
        'follow it. <span id="live-status"></span></p>'
        + _table(["stage", *_STAGE_COLUMNS], stages, "live-stages")
        + f"<h3>Finished last</h3>{finished}</section>"
    )

"""The viewer's pages (`themis view`) as HTML, each from the same data its `/api/...` endpoint
returns: the runs list, a run (the HTML report's body, failures by kind, a page of trials), one
case's trials side by side, and a paired comparison with the cases where the sides disagree.

Every text from a run is HTML-escaped (a model's response is untrusted: `<script>` shows as
text); the CSS and the one script (the report's table sort and filter) are served by the viewer
itself, and its Content-Security-Policy allows nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from themis.app.render.comparison_html import comparison_section
from themis.app.render.inspect_views import value_text
from themis.app.render.report_html import report_body
from themis.app.usecases.reporting import ReportDocument
from themis.core.comparison import Comparison


def _text(value: object) -> str:
    return "—" if value is None else escape(str(value))


def _number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else _text(value)


def run_href(run_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}"


def case_href(run_id: str, case_id: str) -> str:
    return f"{run_href(run_id)}/cases/{quote(case_id, safe='')}"


def page(title: str, body: str) -> str:
    """A whole page: the shared head, a navigation line, `body`."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Themis</title>"
        '<link rel="stylesheet" href="/static/report.css">'
        '<link rel="stylesheet" href="/static/view.css">'
        '</head><body><nav><a href="/">runs</a> · <a href="/compare">compare</a></nav>'
        f"{body}"
        '<script src="/static/report.js"></script><script src="/static/live.js"></script>'
        "</body></html>\n"
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], table_id: str = "") -> str:
    """A table of cells that are already HTML (each caller escapes what it puts in)."""
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{escape(name)}</th>" for name in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def live_value(run_id: str, field: str, value: object, stage: str = "") -> str:
    """`value`, kept current by live.js from `/api/live` while run `run_id` executes."""
    at = f' data-stage="{escape(stage)}"' if stage else ""
    return f'<span data-live-run="{escape(run_id)}"{at} data-field="{field}">{_text(value)}</span>'


def _held_note(live: Mapping[str, Any] | None) -> str:
    if live is None:
        return ""
    served = live.get("viewer")
    where = (
        f' It serves them live at <a href="{escape(served)}">{escape(served)}</a>.'
        if served
        else ""
    )
    return (
        f'<p class="live">The store is held by a running Themis process (PID '
        f"{_text(live['pid'])}): showing what it publishes.{where}</p>"
    )


def runs_page(
    runs: Sequence[Mapping[str, Any]],
    live: Mapping[str, Any] | None,
    running: Collection[str] = (),
    *,
    watch: bool = False,
) -> str:
    """Every run of the store (sortable by a header click, filtered by typing); the counts of
    the `running` runs stay current while the page is open. With `watch` (a process runs on
    the store, or is about to), live.js also looks for runs that start publishing after the
    page was made, and reloads the page to show them."""

    def count(run: Mapping[str, Any], field: str, source: str) -> str:
        if run["run_id"] in running:
            return live_value(run["run_id"], source, run[field])
        return _text(run[field])

    rows = [
        [
            _text(run["name"]),
            f'<a href="{run_href(run["run_id"])}"><code>{_text(run["run_id"][:16])}</code></a>',
            _text(run["status"]),
            _text(run["completed_through_stage"]),
            _text(run["planned"]),
            count(run, "scored", "done"),
            count(run, "failed", "failed"),
            count(run, "pending", "pending"),
            _text(run["created_at"]),
            _text(run["headline"]),
        ]
        for run in runs
    ]
    headers = ["name", "run", "status", "completed stage", "planned", "scored", "failed"]
    headers += ["pending", "created", "headline metric"]
    filter_box = (
        '<p><input id="filter" type="search" placeholder="filter: words every row must contain">'
        f' <span id="shown">{len(runs)}</span> runs shown</p>'
    )
    watching = " data-live-watch" if watch else ""
    status = f'<p id="live-status"{watching}></p>' if running or watch else ""
    note = _held_note(live)
    return page("runs", f"<h1>Runs</h1>{note}{status}{filter_box}{_table(headers, rows, 'cases')}")


def _pager(base: str, query: Mapping[str, Any], total: int, offset: int, limit: int) -> str:
    links = []
    if offset > 0:
        previous = urlencode({**query, "offset": max(0, offset - limit)})
        links.append(f'<a href="{escape(base)}?{escape(previous)}">previous</a>')
    if offset + limit < total:
        following = urlencode({**query, "offset": offset + limit})
        links.append(f'<a href="{escape(base)}?{escape(following)}" id="next">next</a>')
    shown = f"{offset + 1}–{min(total, offset + limit)} of {total}" if total else "none"
    return f'<p class="pager"><span class="shown">{shown}</span> {" · ".join(links)}</p>'


def run_page(
    document: ReportDocument,
    failures: Sequence[Mapping[str, Any]],
    changes: Sequence[Mapping[str, Any]],
    trials: Mapping[str, Any],
    query: Mapping[str, Any],
    live: str = "",
) -> str:
    """One run: while it executes, its `live` panel; the report (numbers, intervals and plots
    as `themis report --format html`), the runtime `changes` of its later executions, failures
    by kind with links to their cases, and a page of trials."""
    run_id = document.report.run_id
    failure_rows = [
        [
            _text(kind["error_kind"]),
            _text(kind["count"]),
            ", ".join(
                f'<a href="{case_href(run_id, case)}">{_text(case)}</a>' for case in kind["cases"]
            ),
        ]
        for kind in failures
    ]
    failed = (
        _table(["error kind", "trials", "cases (first few)"], failure_rows, "failures")
        if failures
        else "<p>No trial failed for good.</p>"
    )
    compare = f'<a href="/compare?{escape(urlencode({"a": run_id}))}">compare its models</a>'
    body = [
        f"<h1>{escape(document.report.name)}</h1>",
        f'<p>{compare} · <a href="/api/runs/{quote(run_id, safe="")}">JSON</a></p>',
        live,
        breakdown_form(document),
        report_body(document),
        _runtime_changes(changes),
        f'<div id="failures-by-kind"><h2>Failures by kind</h2>{failed}</div>',
        "<h2>Trials</h2>",
        _trials_section(run_id, trials, query),
    ]
    return page(f"{document.report.name} · {run_id[:12]}", "\n".join(body))


def _runtime_changes(changes: Sequence[Mapping[str, Any]]) -> str:
    """The run's runtime lineage (`inspect snapshot`'s): the settings later executions changed."""
    rows = [
        [
            _text(change["at"]),
            _text(change["field"]),
            f"{_text(value_text(change['old']))} → {_text(value_text(change['new']))}",
        ]
        for change in changes
    ]
    shown = (
        _table(["at", "field", "old → new"], rows, "runtime-changes")
        if rows
        else "<p>No later execution changed a runtime setting.</p>"
    )
    return f'<div id="runtime-lineage"><h2>Runtime changes</h2>{shown}</div>'


# The plan's dimensions as the breakdown form names them (a slice is a dataset of its own).
_DIMENSION_LABELS = {"dataset": "dataset / slice", "model": "model", "prompt": "prompt"}


def breakdown_form(document: ReportDocument) -> str:
    """Checkboxes choosing what the report's rows are grouped by (`?by=...`, as `themis report
    --by`): the plan's dimensions and the run's case fields, the current grouping checked."""
    chosen = set(document.report.by)
    boxes = [
        (name, _DIMENSION_LABELS.get(name, f"case field {name}"))
        for name in [*_DIMENSION_LABELS, *document.fields]
    ]
    labels = "".join(
        f'<label><input type="checkbox" name="by" value="{escape(name)}"'
        f"{' checked' if name in chosen else ''}> {escape(label)}</label> "
        for name, label in boxes
    )
    return (
        f'<form method="get" action="{run_href(document.report.run_id)}" id="breakdown">'
        f"<fieldset><legend>Rows by</legend>{labels}"
        '<button type="submit">group</button></fieldset></form>'
    )


def _trials_section(run_id: str, trials: Mapping[str, Any], query: Mapping[str, Any]) -> str:
    search = escape(str(query.get("q", "")))
    by = escape(str(query.get("by", "")))
    kept = f'<input type="hidden" name="by" value="{by}">' if by else ""
    form = (
        f'<form method="get" action="{run_href(run_id)}"><input name="q" type="search" '
        f'value="{search}" placeholder="words every trial must contain"> {kept}'
        '<button type="submit">search</button></form>'
    )
    rows = []
    for trial in trials["rows"]:
        scores = ", ".join(f"{name} {value:g}" for name, value in trial["scores"].items())
        rows.append(
            [
                f'<a href="{case_href(run_id, trial["case_id"])}">{_text(trial["case_id"])}</a>',
                _text(trial["dataset"]),
                _text(trial["model"]),
                _text(trial["prompt"]),
                _text(trial["sample"]),
                _text(trial["status"]),
                _text(trial["answer"]),
                _text(scores or None),
                _text(trial["error_kind"]),
                f'<pre class="response">{_text(trial["response"])}</pre>',
            ]
        )
    headers = ["case", "dataset", "model", "prompt", "sample", "status", "answer", "scores"]
    headers += ["error", "response"]
    pager = _pager(run_href(run_id), query, trials["total"], trials["offset"], trials["limit"])
    return form + pager + _table(headers, rows, "trials")


def _block(title: str, value: Any) -> str:
    if value in (None, [], {}):
        return ""
    if isinstance(value, str):
        shown = value
    else:
        shown = json.dumps(value, indent=1, ensure_ascii=False, default=str)
    return f"<h4>{escape(title)}</h4><pre>{escape(shown)}</pre>"


def case_page(case: Mapping[str, Any]) -> str:
    """Every trial of one case side by side: messages, response, parse, scores, retries and
    failures; then reduced candidates (groups) and judge verdicts."""
    columns = []
    for trial in case["trials"]:
        generation = trial["generation"] or {}
        messages = "".join(
            f'<div class="message"><b>{_text(m["role"])}</b><pre>{_text(m["content"])}</pre></div>'
            for m in trial["messages"]
        )
        columns.append(
            '<section class="trial">'
            f"<h3>{_text(trial['model'])} · {_text(trial['prompt'])} · sample "
            f"{_text(trial['sample'])}</h3>"
            f"<p>status <b>{_text(trial['status'])}</b> · expected "
            f"<code>{_text(trial['expected'])}</code></p>"
            f"<h4>messages</h4>{messages}"
            f'<h4>response</h4><pre class="response">{_text(generation.get("text"))}</pre>'
            + _block("parse", trial["parse"])
            + _block("scores", trial["scores"])
            + _block("retries", generation.get("retries"))
            + _block("failure", trial["failure"])
            + _block("earlier failures", trial["earlier_failures"])
            + _block("code execution", trial["execution"])
            + "</section>"
        )
    groups = "".join(
        _block(f"reduced candidate {g.get('group_id', '')}", g) for g in case["groups"]
    )
    judged = "".join(
        _block(f"judge {j.get('judge', '')} on {j.get('model', '')}", j) for j in case["judgements"]
    )
    body = (
        f"<h1>Case {_text(case['case_id'])}</h1>"
        f'<p>run <a href="{run_href(case["run_id"])}"><code id="run-id">'
        f"{_text(case['run_id'])}</code></a> · {len(case['trials'])} trials</p>"
        f'<div class="trials">{"".join(columns)}</div>'
        + (f"<h2>Reduced candidates</h2>{groups}" if groups else "")
        + (f"<h2>Judge verdicts</h2>{judged}" if judged else "")
    )
    return page(f"case {case['case_id']}", body)


def compare_form(runs: Sequence[Mapping[str, Any]], query: Mapping[str, Any]) -> str:
    """The form choosing two runs, or one run and two of its models."""
    options = "".join(
        f'<option value="{escape(run["run_id"])}">{_text(run["name"])} '
        f"{_text(run['run_id'][:12])}</option>"
        for run in runs
    )

    def field(name: str, label: str) -> str:
        value = escape(str(query.get(name, "")))
        return f'<label>{label} <input name="{name}" value="{value}" list="run-ids"></label> '

    return (
        f'<datalist id="run-ids">{options}</datalist>'
        '<form method="get" action="/compare">'
        + field("a", "run A")
        + field("b", "run B (or leave empty)")
        + field("models", "models A,B within run A")
        + '<button type="submit">compare</button></form>'
    )


def compare_page(
    form: str,
    comparison: Comparison | None,
    disagreements: Mapping[str, Any] | None,
    query: Mapping[str, Any],
) -> str:
    """`themis compare`'s statistics (forest plot of B − A, table, notes), then the cases where
    the two sides' mean score differs, most different first."""
    parts = ["<h1>Compare</h1>", form]
    if comparison is not None:
        parts.append(comparison_section(comparison))
    if disagreements is not None:
        run_a, run_b = disagreements["run_a"], disagreements["run_b"]
        rows = [
            [
                _text(row["dataset"]),
                f'<a href="{case_href(run_a, row["case_id"])}">{_text(row["case_id"])}</a>'
                + (
                    ""
                    if run_b == run_a
                    else f' (<a href="{case_href(run_b, row["case_id"])}">B</a>)'
                ),
                _number(row["a"]),
                _number(row["b"]),
                _number(row["delta"]),
            ]
            for row in disagreements["rows"]
        ]
        pager = _pager(
            "/compare",
            query,
            disagreements["total"],
            disagreements["offset"],
            disagreements["limit"],
        )
        parts += [
            f"<h2>Cases where they disagree on {escape(disagreements['metric'])}</h2>",
            pager,
            _table(["dataset", "case", "A", "B", "B − A"], rows, "disagreements"),
        ]
    return page("compare", "\n".join(parts))


def message_page(title: str, message: str) -> str:
    """An error page (not found, bad request, a held store): one escaped line."""
    return page(title, f'<h1>{escape(title)}</h1><p class="error">{escape(message)}</p>')

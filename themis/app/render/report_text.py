"""What every report format says the same way: the header's provenance lines, the counts beside
the score, and the legend that names the mean and each interval's statistic."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from attrs import frozen

from themis.app.usecases.reporting import ReportDocument
from themis.core.breakdown import PLAN_DIMENSIONS
from themis.core.report import AgreementRow, Report, ReportRow

MEAN_DEFINITION = (
    "mean = mean of case means: each case's trials (samples, and prompts or models pooled by "
    "the grouping) are averaged first, then the cases; a failed generation scores 0"
)

N_DEFINITION = (
    "n = trials behind the mean (for pass@k, majority@k and reduced rows: case × model × "
    "prompt units); failed, unparsed, truncated, retried and cache hits count trials"
)

# The statistic behind each `ci_method` (themis.core.stats), as the legend states it.
CI_METHODS = {
    "wilson": "Wilson score 95% interval over the cases (one 0/1 score per case)",
    "wilson-deff": (
        "Wilson score 95% interval on the effective n = n / design effect "
        "(several 0/1 scores per case, correlated within a case)"
    ),
    "t-cluster": "Student-t 95% interval over the case means, clipped to [0, 1]",
    "none": "no interval (nothing scored)",
}

# The counts shown beside every score, by the report row's attribute.
COUNTS = ("n", "failed", "unparsed", "truncated", "retried", "cache_hits")
COUNT_HEADERS = {"cache_hits": "cache hits", "judge_failed": "judge failed"}
# Every column name a format writes besides the case fields (CSV's and the table's headers).
_COLUMN_NAMES = frozenset(
    {*PLAN_DIMENSIONS, "run_id", "metric", "mean", "95% CI", "interval", "ci_low", "ci_high"}
    | {"ci_method", *COUNTS, *COUNT_HEADERS, *COUNT_HEADERS.values()}
)


def _field_label(name: str) -> str:
    return f"case.{name}" if name in _COLUMN_NAMES else name


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def interval(row: ReportRow) -> str:
    if row.ci_low is None or row.ci_high is None:
        return "—"
    return f"[{row.ci_low:.3f}, {row.ci_high:.3f}]"


@frozen
class Columns:
    """A report's table layout, the same in every format: the grouping (dataset, model, prompt,
    then the case fields broken down by), the metric, mean, 95% CI, the interval's statistic,
    the counts, and `judge failed` when the report has judge rows."""

    fields: tuple[str, ...]
    judged: bool

    @classmethod
    def of(cls, report: Report) -> Columns:
        fields = tuple(name for name in report.by if name not in PLAN_DIMENSIONS)
        return cls(fields=fields, judged=any(row.judge for row in report.rows))

    @property
    def places(self) -> list[str]:
        """The place columns' names; a case field named like another column is `case.<name>`."""
        return [*PLAN_DIMENSIONS, *(_field_label(name) for name in self.fields)]

    @property
    def counts(self) -> list[str]:
        """The count columns' names (`COUNTS`, then `judge_failed` for judged reports)."""
        return [*COUNTS, *(["judge_failed"] if self.judged else [])]

    @property
    def headers(self) -> list[str]:
        counts = [COUNT_HEADERS.get(name, name) for name in self.counts]
        return [*self.places, "metric", "mean", "95% CI", "interval", *counts]

    def places_of(self, row: ReportRow) -> list[str | None]:
        """The row's dataset, model and prompt (`*` when pooled), then its case fields' values
        (`None` where the case lacks the field, or the row is not broken down by it)."""
        return [row.dataset, row.model, row.prompt, *(row.case_fields.get(f) for f in self.fields)]

    def counts_of(self, row: ReportRow) -> list[str]:
        """The counts as text; `judge failed` is empty on rows that are not a judge's."""
        cells = [str(getattr(row, name)) for name in COUNTS]
        if self.judged:
            cells.append(str(row.judge_failed) if row.judge else "")
        return cells

    def cells(self, row: ReportRow) -> list[str]:
        """One row as `headers` orders it, numbers to 3 decimals, `—` for a missing value."""
        return [
            *("—" if value is None else value for value in self.places_of(row)),
            row.metric,
            number(row.mean),
            interval(row),
            row.ci_method,
            *self.counts_of(row),
        ]


AGREEMENT_HEADERS = ("judge", "statistic", "value", "raters", "items")


def agreement_cells(row: AgreementRow) -> list[str]:
    """One judge agreement statistic as `AGREEMENT_HEADERS` orders it."""
    return [row.judge, row.statistic, number(row.value), str(row.raters), str(row.items)]


def when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def status_text(report: Report) -> str:
    through = report.completed_through_stage
    return report.status + (f" through {through.value}" if through is not None else "")


def trial_counts(report: Report) -> str:
    return (
        f"{report.planned} planned, {report.scored} scored, {report.failed} failed, "
        f"{report.pending} pending, {report.truncated} truncated (cut at max_tokens), "
        f"{report.retried} retried, "
        f"{report.cache_hits} cache hits"
    )


def provenance_text(document: ReportDocument) -> str:
    """`themis 0.1.0 (ran with 0.1.0) · config sha256 1a2b3c4d5e6f · git 0a1b2c3 (dirty)`."""
    recorded = document.provenance.get("themis")
    version = f"themis {document.themis_version}"
    if recorded is not None and recorded != document.themis_version:
        version += f" (the run was made with {recorded})"
    config = document.provenance.get("config_sha256")
    parts = [version, f"config sha256 {config[:12] if config else '—'}"]
    commit = document.provenance.get("git_commit")
    if commit:
        dirty = " (uncommitted changes)" if document.provenance.get("git_dirty") == "true" else ""
        parts.append(f"git {commit[:12]}{dirty}")
    return " · ".join(parts)


def served_text(document: ReportDocument) -> list[str]:
    """One line per model: requested id, and the served ids with counts when they differ."""
    lines = []
    for model in document.report.served:
        served = ", ".join(f"{name} ({count})" for name, count in sorted(model.served.items()))
        if not model.served:
            drift = "no served model id reported"
        elif model.changed:
            drift = "DRIFT: several models answered"
        elif model.differs:
            drift = "DRIFT: another model answered"
        else:
            drift = "as requested"
        lines.append(
            f"{model.model}: requested {model.requested}, served {served or '—'} ({drift})"
        )
    return lines


def header_lines(document: ReportDocument) -> list[str]:
    """The provenance every text format opens with, one fact per line."""
    report = document.report
    return [
        f"run {report.run_id} · {status_text(report)} · created {when(document.created_at)}",
        provenance_text(document),
        f"trials: {trial_counts(report)}",
        *(f"served model {line}" for line in served_text(document)),
    ]


def legend_lines(rows: Sequence[ReportRow]) -> list[str]:
    """The mean's definition, then the statistic of each interval the rows use."""
    methods = dict.fromkeys(row.ci_method for row in rows)
    return [
        MEAN_DEFINITION,
        N_DEFINITION,
        *(f"{method}: {CI_METHODS.get(method, method)}" for method in methods),
    ]

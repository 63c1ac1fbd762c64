"""`Reporter`: a stored run's report in every format `themis report` writes, from Python."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from themis.app.usecases.comparing import compare_stored
from themis.app.usecases.reporting import ReportDocument, report_document
from themis.app.wiring import StoreLike, opened_store
from themis.core.breakdown import Breakdown
from themis.core.comparison import Comparison
from themis.core.errors import ConfigError
from themis.core.report import Report

FORMATS = ("table", "json", "md", "csv", "latex", "html")
# What `save` infers from a file's suffix when no format is given.
SUFFIXES = {
    ".json": "json",
    ".md": "md",
    ".markdown": "md",
    ".csv": "csv",
    ".tex": "latex",
    ".html": "html",
    ".htm": "html",
    ".txt": "table",
}


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ConfigError(f"format: must be one of {', '.join(FORMATS)}; got {name!r}")
    return name


class Reporter:
    """The report of one stored run, grouped `by` dataset, model, prompt or case fields (see
    `themis.core.breakdown`), rendered as `table`, `json`, `md`, `csv`, `latex` or `html`.

    The store is read once here (and once more for `html`, which adds every trial's result);
    an unknown case field in `by` raises `ConfigError`. `compare_to` names a run B: `html`,
    `md`, `latex` and `json` then add the paired comparison of B against this run
    (`themis.compare`).
    """

    def __init__(
        self,
        run_id: str,
        store: StoreLike = "themis.duckdb",
        *,
        by: Sequence[str] = (),
        compare_to: str | None = None,
    ) -> None:
        self._store = store
        self._by = Breakdown.of(by)
        with opened_store(store, read_only=True) as opened:
            self._document = report_document(opened, run_id, self._by)
            self._comparison = (
                None
                if compare_to is None
                else compare_stored(opened, (self._document.report.run_id, compare_to))
            )
        self._with_cases: ReportDocument | None = None

    @property
    def comparison(self) -> Comparison | None:
        """Run B (`compare_to`) against this run, paired by case; `None` without `compare_to`."""
        return self._comparison

    @property
    def report(self) -> Report:
        return self._document.report

    @property
    def document(self) -> ReportDocument:
        """The report with its provenance (what every format renders)."""
        return self._document

    def to_json(self) -> dict[str, Any]:
        """The `json` format as data."""
        from themis.app.render.comparisons import comparison_json
        from themis.app.render.report_json import document_json

        data = document_json(self._document)
        if self._comparison is not None:
            data["comparison"] = comparison_json(self._comparison)
        return data

    def render(self, format: str = "md") -> str:
        """The report as text in `format` (one of `FORMATS`)."""
        from themis.app.render import comparisons, report_formats

        check_format(format)
        comparison = self._comparison
        if comparison is not None and format in ("table", "csv"):
            raise ConfigError(
                f"a comparison is rendered in html, md, latex or json, not {format}; "
                "`themis compare` prints it as a table"
            )
        if format == "json":
            return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"
        if format == "md":
            text = report_formats.report_markdown(self._document)
            if comparison is not None:
                text += "\n" + comparisons.comparison_markdown(comparison)
            return text
        if format == "csv":
            return report_formats.report_csv(self._document)
        if format == "latex":
            text = report_formats.report_latex(self._document)
            if comparison is not None:
                text += "\n" + comparisons.comparison_latex(comparison)
            return text
        if format == "html":
            from themis.app.render.report_html import report_html

            return report_html(self._cases_document(), comparison)
        return _table_text(self._document)

    def save(self, path: str | Path, format: str | None = None) -> Path:
        """Write the report to `path` in `format` (default: from the suffix, e.g. `.html`)."""
        path = Path(path)
        chosen = format or SUFFIXES.get(path.suffix.lower())
        if chosen is None:
            raise ConfigError(
                f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
                f"pass one of {', '.join(FORMATS)}"
            )
        path.write_text(self.render(chosen), encoding="utf-8")
        return path

    def _cases_document(self) -> ReportDocument:
        if self._with_cases is None:
            run_id = self._document.report.run_id
            with opened_store(self._store, read_only=True) as opened:
                self._with_cases = report_document(opened, run_id, self._by, cases=True)
        return self._with_cases


def _table_text(document: ReportDocument) -> str:
    """The table `themis report` prints, as plain text 160 columns wide."""
    from rich.console import Console

    from themis.app.render.reports import document_render

    console = Console(width=160, record=True, file=io.StringIO(), color_system=None)
    console.print(document_render(document))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"

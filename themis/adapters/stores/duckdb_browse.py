"""Pages of one run's log for the viewer (`themis view`): trials a page at a time, failures
grouped by kind, and the cases where two sides of a comparison disagree.

Every call opens the store read-only as every reader does (`DuckDBStore(read_only=True)`: a
held store raises `StoreLocked` at once, another program's file is refused), runs one query over
the log's views (`duckdb_views`) with `LIMIT`/`OFFSET`, and closes it again, so a viewer never
keeps a writer waiting for more than one query. Given an open store instead (the process holding
the file, viewing the run it executes), each query takes a cursor of it. Nothing here loops over
trials in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from themis.adapters.stores.duckdb import DuckDBStore
from themis.adapters.stores.duckdb_views import view_sql
from themis.core.errors import StoreError

__all__ = ["TRIAL_SORTS", "FailureKind", "LogBrowser", "Page"]

# Columns a page of trials may be sorted by (anything else is refused by the caller).
TRIAL_SORTS = ("position", "case_id", "model", "prompt", "status", "latency_s", "output_tokens")
# The response text a trials page carries per row (the case page shows all of it).
RESPONSE_CHARS = 300


@attrs.frozen
class Page:
    """Rows `offset …` of `total` matching rows, each a column → value mapping."""

    total: int
    offset: int
    rows: tuple[dict[str, Any], ...]


@attrs.frozen
class FailureKind:
    """How many trials of a run failed for good with `error_kind`, and a few of their cases."""

    error_kind: str
    count: int
    cases: tuple[str, ...]


# The log of the run(s) a query is about, filtered before the views' window functions read it.
_RUN_EVENTS = "(SELECT * FROM events WHERE run_id = $run)"
_RUN_PLACES = "(SELECT * FROM trial_places WHERE run_id = $run)"
_TWO_EVENTS = "(SELECT * FROM events WHERE run_id IN ($ra, $rb))"
_TWO_PLACES = "(SELECT * FROM trial_places WHERE run_id IN ($ra, $rb))"


class LogBrowser:
    """Read-only, paginated queries on the DuckDB store at `source` (a path), or on the open
    store `source` (whose owner closes it)."""

    def __init__(self, source: str | DuckDBStore) -> None:
        self._source = source
        self._path = source if isinstance(source, str) else source.path

    def _query(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(self._source, DuckDBStore):
            return self._run(self._source, sql, parameters)
        store = DuckDBStore(self._path, read_only=True, lock_wait=0.0)
        try:
            return self._run(store, sql, parameters)
        finally:
            store.close()

    def _run(
        self, store: DuckDBStore, sql: str, parameters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        cursor = store.cursor()
        try:
            result = cursor.execute(sql, parameters)
            names = [column[0] for column in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        except Exception as error:
            raise StoreError(f"{self._path}: {str(error).splitlines()[0]}") from error
        finally:
            cursor.close()

    def _trials(self) -> str:
        return view_sql("trials", events=_RUN_EVENTS, places=_RUN_PLACES)

    def trials(
        self,
        run_id: str,
        *,
        offset: int = 0,
        limit: int = 50,
        search: str = "",
        sort: str = "position",
        descending: bool = False,
    ) -> Page:
        """A page of the run's trials (`trials` view columns, `scores` as a mapping, and the first
        `RESPONSE_CHARS` of the response), optionally only those whose case, model, prompt,
        status or answer contains every word of `search`."""
        if sort not in TRIAL_SORTS:
            raise StoreError(f"sort: must be one of {', '.join(TRIAL_SORTS)}; got {sort!r}")
        words = search.lower().split()
        where = "".join(
            f" AND lower(concat_ws(' ', t.dataset, t.case_id, t.model, t.prompt, t.status,"
            f" t.answer, t.error_kind)) LIKE $w{index}"
            for index in range(len(words))
        )
        order = "p.position" if sort == "position" else f"t.{sort}"
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT t.*, left(g.p->>'text', {RESPONSE_CHARS}) AS response,"
            " count(*) OVER () AS matching"
            f" FROM ({self._trials()}) t"
            " JOIN trial_places p ON p.run_id = t.run_id AND p.trial_id = t.trial_id"
            " LEFT JOIN (SELECT trial_key, payload::JSON AS p FROM events"
            "   WHERE run_id = $run AND kind = 'generation_completed'"
            "   QUALIFY row_number() OVER (PARTITION BY trial_key ORDER BY seq) = 1) g"
            "   ON g.trial_key = t.trial_key"
            f" WHERE t.run_id = $run{where}"
            f" ORDER BY {order} {direction} NULLS LAST, p.position"
            " LIMIT $limit OFFSET $offset"
        )
        parameters: dict[str, Any] = {"run": run_id, "limit": limit, "offset": offset}
        parameters.update({f"w{index}": f"%{word}%" for index, word in enumerate(words)})
        rows = self._query(sql, parameters)
        total = int(rows[0]["matching"]) if rows else self._count(run_id, where, parameters)
        for row in rows:
            del row["matching"]
            row["scores"] = dict(row["scores"] or {})
        return Page(total=total, offset=offset, rows=tuple(rows))

    def _count(self, run_id: str, where: str, parameters: dict[str, Any]) -> int:
        wanted = {key: value for key, value in parameters.items() if key.startswith(("w", "run"))}
        sql = f"SELECT count(*) AS n FROM ({self._trials()}) t WHERE t.run_id = $run{where}"
        return int(self._query(sql, wanted)[0]["n"])

    def latest(self, run_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The run's trials that most recently finished (scored, or failed for good), newest
        first: `seq`, `at`, place columns, `status`, `scores` and `error_kind`. A query of the
        log's newest events only, cheap while a run proceeds (the live viewer polls it)."""
        sql = (
            "SELECT e.seq, e.recorded_at AS at, p.dataset, p.case_id, p.model, p.prompt, p.sample,"
            " CASE WHEN e.kind = 'score_completed' THEN 'scored' ELSE 'failed' END AS status,"
            " CAST(e.p->'scores' AS MAP(VARCHAR, DOUBLE)) AS scores,"
            " e.p->>'error_kind' AS error_kind"
            " FROM (SELECT seq, recorded_at, kind, trial_key, payload::JSON AS p FROM events"
            "   WHERE run_id = $run AND kind IN ('score_completed', 'generation_failed')"
            "   ORDER BY seq DESC LIMIT $limit) e"
            " JOIN trial_places p ON p.run_id = $run AND CASE WHEN e.kind = 'score_completed'"
            "   THEN p.trial_id = e.p->>'trial_id' ELSE p.trial_key = e.trial_key END"
            " ORDER BY e.seq DESC, p.position LIMIT $limit"
        )
        rows = self._query(sql, {"run": run_id, "limit": limit})
        for row in rows:
            row["scores"] = dict(row["scores"] or {})
        return rows

    def failure_kinds(self, run_id: str, *, cases: int = 5) -> list[FailureKind]:
        """The run's trials that failed for good, grouped by error kind, most frequent first."""
        sql = (
            "SELECT error_kind, count(*) AS n,"
            " list(DISTINCT case_id ORDER BY case_id)[1:$cases] AS cases"
            f" FROM ({self._trials()}) WHERE run_id = $run AND status = 'failed'"
            " GROUP BY error_kind ORDER BY n DESC, error_kind"
        )
        rows = self._query(sql, {"run": run_id, "cases": cases})
        return [
            FailureKind(str(row["error_kind"]), int(row["n"]), tuple(row["cases"])) for row in rows
        ]

    def disagreements(
        self,
        sides: Sequence[tuple[str, str | None]],
        metric: str,
        *,
        offset: int = 0,
        limit: int = 50,
    ) -> Page:
        """The cases (dataset, case) whose mean `metric` differs between side A and side B, each
        side a run and optionally one model of it; a failed trial counts 0, as in the report."""
        (run_a, model_a), (run_b, model_b) = sides
        side = (
            "SELECT dataset, case_id, avg(CASE WHEN status = 'failed' THEN 0.0"
            " ELSE scores[$metric] END) AS mean"
            " FROM ({trials}) WHERE run_id = ${run}"
            " AND (CAST(${model} AS VARCHAR) IS NULL OR model = CAST(${model} AS VARCHAR))"
            " AND status IN ('scored', 'failed') GROUP BY dataset, case_id"
        )
        trials = view_sql("trials", events=_TWO_EVENTS, places=_TWO_PLACES)
        sql = (
            f"WITH a AS ({side.format(trials=trials, run='ra', model='ma')}),"
            f" b AS ({side.format(trials=trials, run='rb', model='mb')})"
            " SELECT a.dataset, a.case_id, a.mean AS a, b.mean AS b, b.mean - a.mean AS delta,"
            " count(*) OVER () AS matching"
            " FROM a JOIN b ON a.dataset = b.dataset AND a.case_id = b.case_id"
            " WHERE a.mean IS DISTINCT FROM b.mean"
            " ORDER BY abs(b.mean - a.mean) DESC, a.dataset, a.case_id"
            " LIMIT $limit OFFSET $offset"
        )
        parameters = {
            "ra": run_a,
            "ma": model_a,
            "rb": run_b,
            "mb": model_b,
            "metric": metric,
            "limit": limit,
            "offset": offset,
        }
        rows = self._query(sql, parameters)
        total = int(rows[0]["matching"]) if rows else 0
        for row in rows:
            del row["matching"]
        return Page(total=total, offset=offset, rows=tuple(rows))

"""A run's trial rows as the viewer reads them (`trial_rows`: the `trials` log view's columns,
the start of the response, the plan position, the words a search looks in), and the places
(`PlannedPlaces`) those rows are joined to when the store keeps none for the run yet — a run
executing now (its execution keeps them when it ends) or one killed before its execution ended
(the next writer keeps them). The viewer must not write the store (ADR 0044), so it plans them
from the run's snapshot, once per run (a run's plan never changes), into a database of its own.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import attrs

from themis.adapters.codec import decode_snapshot
from themis.adapters.stores.duckdb_snapshot import stored_text
from themis.adapters.stores.duckdb_views import INSERT_PLACES, PLACES_TABLE, place_columns
from themis.core.errors import StoreError

__all__ = [
    "RESPONSE_CHARS",
    "LogParts",
    "NarrowRows",
    "PlannedPlaces",
    "case_values",
    "metric_path",
    "metric_rows",
    "search_rows",
    "timing_rows",
    "trial_rows",
]

# The response text a trials page carries per row (the case page shows all of it).
RESPONSE_CHARS = 300
_NAMES = itertools.count()

# The log of one run, filtered before the views' window functions read it; `{log}` names its
# events (the store's `events`, or part of its rows: `LogBrowser` narrows them), `{run}` the
# run parameter.
_RUN_EVENTS = "(SELECT * FROM {log} WHERE run_id = ${run}{where})"
_RUN_PLACES = "(SELECT * FROM {places} WHERE run_id = ${run}{where})"
# The reset epochs voiding parses and scores, and each trial's scores of the highest epoch
# above its floor (`ev`: the run's events): what both queries below read alike.
_FLOORS = """floors AS (
  SELECT
    coalesce(max(CASE WHEN stage IN ('generate', 'reduce', 'parse') THEN epoch END), 0)
      AS parse_floor,
    coalesce(max(CASE WHEN stage IN ('generate', 'reduce', 'parse', 'score') THEN epoch END), 0)
      AS score_floor
  FROM (SELECT j[1] AS stage, CAST(j[2] AS BIGINT) AS epoch FROM (
    SELECT json_extract_string(payload, ['$.reset_stage', '$.epoch']) AS j
    FROM ev WHERE kind = 'stage_reset'))
)"""
_SCORED = """scored AS (
  SELECT j[1] AS trial_id, CAST(j[3]::JSON AS MAP(VARCHAR, DOUBLE)) AS scores FROM (
    SELECT seq, json_extract_string(payload, ['$.trial_id', '$.epoch', '$.scores']) AS j
    FROM ev WHERE kind = 'score_completed'), floors
  WHERE coalesce(CAST(j[2] AS BIGINT), 0) >= score_floor
  QUALIFY row_number() OVER (PARTITION BY j[1]
    ORDER BY coalesce(CAST(j[2] AS BIGINT), 0) DESC, seq) = 1
)"""
# A trial's failure kind (the latest execution's failure of its key) and its answer (the
# parse of the highest epoch above its floor): what `_TRIAL_ROWS` and `_SEARCH_ROWS` read alike.
_FAILED = """failed AS (
  SELECT trial_key, payload::JSON->>'error_kind' AS error_kind FROM ev
  WHERE kind = 'generation_failed'
  QUALIFY row_number() OVER (PARTITION BY trial_key
    ORDER BY coalesce(CAST(payload::JSON->>'execution' AS BIGINT), 0) DESC, seq) = 1
)"""
_PARSED = """parsed AS (
  SELECT j[1] AS trial_id, j[3] AS answer, j[4] AS parse_error FROM (
    SELECT seq, json_extract_string(payload, ['$.trial_id', '$.epoch', '$.answer', '$.error'])
      AS j FROM ev WHERE kind = 'parse_completed'), floors
  WHERE coalesce(CAST(j[2] AS BIGINT), 0) >= parse_floor
  QUALIFY row_number() OVER (PARTITION BY j[1]
    ORDER BY coalesce(CAST(j[2] AS BIGINT), 0) DESC, seq) = 1
)"""
# A trial's status (`s`: its score, `g`: its key's generation, `f`: its key's failure), its
# error kind, and the words a search looks in, one text for every query that has them.
_STATUS = """CASE WHEN s.trial_id IS NOT NULL THEN 'scored'
       WHEN g.trial_key IS NOT NULL THEN 'generated'
       WHEN f.trial_key IS NOT NULL THEN 'failed'
       ELSE 'pending' END AS status"""
_KIND_SHOWN = "CASE WHEN g.trial_key IS NULL THEN f.error_kind END"
_ERROR_KIND = f"{_KIND_SHOWN} AS error_kind"
# The error kind by its expression: the bare name `error_kind` is the failure's own column
# (`f.error_kind`), which DuckDB prefers to the alias, and a trial generated after its failure
# was found by the failure's kind.
_HAYSTACK = f"""lower(concat_ws(' ', t.dataset, t.case_id, t.model, t.prompt, status, pa.answer,
    {_KIND_SHOWN})) AS haystack"""
# A run's trials as the `trials` view has them (`duckdb_views`: the same rules, rows and
# columns; `tests/viewer/test_trial_rows.py` compares them), plus the start of the response, the
# plan position and the words a search looks in: every page of trials, failures and
# disagreements reads these rows. Each payload is parsed once (one `json_extract_string` of
# every field it gives) and a key's first generation is an `arg_min`, not a window: about half
# the view's cost (ADR 0051).
_TRIAL_ROWS = """
WITH ev AS (SELECT seq, kind, trial_key, payload FROM {events} WHERE kind IN
  ('generation_completed', 'generation_failed', 'parse_completed', 'score_completed',
   'stage_reset')),
{floors},
generated AS (
  SELECT trial_key, json_extract_string(payload, ['$.finish_reason', '$.latency_s',
    '$.input_tokens', '$.output_tokens', '$.served_model', '$.cache_hit', '$.text']) AS j
  FROM (SELECT trial_key, arg_min(payload, seq) AS payload FROM ev
    WHERE kind = 'generation_completed' GROUP BY trial_key)
),
{failed},
{parsed},
{scored}
SELECT t.run_id, t.trial_id, t.trial_key, t.dataset, t.case_id, t.prompt, t.model, t.provider,
  t.sample,
  {status},
  s.scores, pa.answer, pa.parse_error,
  g.j[1] AS finish_reason, CAST(g.j[2] AS DOUBLE) AS latency_s,
  CAST(g.j[3] AS BIGINT) AS input_tokens, CAST(g.j[4] AS BIGINT) AS output_tokens,
  g.j[5] AS served_model, CAST(g.j[6] AS BOOLEAN) AS cache_hit,
  {error_kind},
  left(g.j[7], {chars}) AS response, t.position,
  {haystack}
FROM {places} t
LEFT JOIN generated g ON g.trial_key = t.trial_key
LEFT JOIN failed f ON f.trial_key = t.trial_key
LEFT JOIN parsed pa ON pa.trial_id = t.trial_id
LEFT JOIN scored s ON s.trial_id = t.trial_id
ORDER BY t.position"""


# What a comparison reads of each trial (ADR 0067): its place, `status` 'scored' or 'failed' when
# it is settled (else NULL: generated or pending) and its value on each metric compared (`v0`,
# `v1`, ...: the score of the highest epoch above its floor, the first logged of that epoch; NULL
# for none), by the same rules as `_TRIAL_ROWS` (a test compares them). Each part of the log is
# read from its own rows (`{resets}`, `{scores}`: the parts' payloads, `{failures}`: the rows
# holding such events; `{generations}`: those holding the failed keys' events), the scores
# without their keys (their payloads name their trial), only the compared metrics parsed out
# of each score (`$metric_path0`, ...: JSON pointers), never the whole map, and a trial's score
# chosen by its plan position (a window over integers, not over 32-character ids).
_METRIC_ROWS = """
WITH ev AS (SELECT kind, payload FROM {resets} WHERE kind = 'stage_reset'),
{floors},
scored AS (
  SELECT j[1] AS trial_id, coalesce(CAST(j[2] AS BIGINT), 0) AS epoch, seq{values} FROM (
    SELECT seq, json_extract_string(payload, ['$.trial_id', '$.epoch'{paths}]) AS j
    FROM {scores} WHERE kind = 'score_completed'), floors
  WHERE coalesce(CAST(j[2] AS BIGINT), 0) >= score_floor
),
failed AS (
  SELECT trial_key FROM {failures} WHERE kind = 'generation_failed'
  EXCEPT SELECT trial_key FROM {generations} WHERE kind = 'generation_completed'
)
SELECT t.dataset, t.model, t.prompt, t.case_id, t.position,
  CASE WHEN s.trial_id IS NOT NULL THEN 'scored'
       WHEN f.trial_key IS NOT NULL THEN 'failed' END AS status{columns}
FROM {places} t
LEFT JOIN scored s ON s.trial_id = t.trial_id
LEFT JOIN failed f ON f.trial_key = t.trial_key
QUALIFY row_number() OVER (PARTITION BY t.position ORDER BY s.epoch DESC NULLS LAST, s.seq) = 1"""
# A score's value as a number: its text cast, or (for a value such as `true`) its JSON cast, as
# the `MAP(VARCHAR, DOUBLE)` cast of the trial rows' scores reads it (parsing every value as
# JSON cost a third of the query).
_METRIC_VALUE = "coalesce(TRY_CAST(j[{at}] AS DOUBLE), CAST(j[{at}]::JSON AS DOUBLE)) AS v{i}"
# Per (dataset, model, prompt, case) of trial rows `{trials}` (with `status` and each trial's
# value on metric i as `v<i>`, NULL for none): `n` settled trials, and per metric the sum of
# their values (`s<i>`, a failed trial or a missing value 0, as `plain_case_scores`), whether
# all are whole (`w<i>`), and the sum and count of those that are not missing (`a<i>`, `c<i>`:
# the disagreements' means, as an `avg` of the values, a failed trial 0). A group none of whose
# trials is settled keeps its row (`n` 0), as the fold's case values do.
_SETTLED = "FILTER (WHERE status IN ('scored', 'failed'))"
_CASE_VALUES = """SELECT dataset, model, prompt, case_id, count(*) {settled} AS n{sums}
FROM (SELECT dataset, model, prompt, case_id, status{values} FROM {trials})
GROUP BY dataset, model, prompt, case_id"""
_CASE_VALUE = """, sum(coalesce(y{i}, 0.0)) {settled} AS s{i},
  bool_and(coalesce(y{i}, 0.0) = round(coalesce(y{i}, 0.0))) {settled} AS w{i},
  sum(y{i}) {settled} AS a{i}, count(y{i}) {settled} AS c{i}"""


# What a search of a run's trials, or a sort by a column of its places or its status, reads of
# each trial (`LogBrowser.trials`, ADR 0064): the trial rows' status, error kind and searched
# words by the same rules and texts as `_TRIAL_ROWS` (a test compares them), without parsing a
# generation's payload (the largest of a trial's: its response) nor a score's map (a trial is
# scored when it has a score of an epoch above its floor, whatever the score). The parses,
# scores and resets are split from the rows without their keys (`{payloads}`: their payloads
# name their trial), the failures from the rows holding one, and a key generated is read from
# the rows' kinds and keys alone (`{generations}`), no payload split for it (ADR 0067).
_SEARCH_ROWS = """
WITH ev AS (
  SELECT seq, kind, NULL::VARCHAR AS trial_key, payload FROM {payloads}
    WHERE kind IN ('parse_completed', 'score_completed', 'stage_reset')
  UNION ALL
  SELECT seq, kind, trial_key, payload FROM {failures} WHERE kind = 'generation_failed'),
{floors},
generated AS (SELECT DISTINCT trial_key FROM {generations} WHERE kind = 'generation_completed'),
{failed},
{parsed},
scored AS (
  SELECT DISTINCT j[1] AS trial_id FROM (
    SELECT json_extract_string(payload, ['$.trial_id', '$.epoch']) AS j
    FROM ev WHERE kind = 'score_completed'), floors
  WHERE coalesce(CAST(j[2] AS BIGINT), 0) >= score_floor
)
SELECT t.position, t.trial_key, t.case_id, t.model, t.prompt,
  {status},
  {error_kind},
  {haystack}
FROM {places} t
LEFT JOIN generated g ON g.trial_key = t.trial_key
LEFT JOIN failed f ON f.trial_key = t.trial_key
LEFT JOIN parsed pa ON pa.trial_id = t.trial_id
LEFT JOIN scored s ON s.trial_id = t.trial_id"""
# A sort by a key's first generation's latency or output tokens reads those alone, from the
# generations split without their keys (each payload names its key).
_TIMING_ROWS = """
WITH generated AS (
  SELECT j[1] AS trial_key, arg_min(j, seq) AS j FROM (
    SELECT seq,
      json_extract_string(payload, ['$.trial_key', '$.latency_s', '$.output_tokens']) AS j
    FROM {payloads} WHERE kind = 'generation_completed')
  GROUP BY j[1]
)
SELECT t.position, CAST(g.j[2] AS DOUBLE) AS latency_s, CAST(g.j[3] AS BIGINT) AS output_tokens
FROM {places} t LEFT JOIN generated g ON g.trial_key = t.trial_key"""
_PARTS = {
    "floors": _FLOORS,
    "failed": _FAILED,
    "parsed": _PARSED,
    "scored": _SCORED,
    "status": _STATUS,
    "error_kind": _ERROR_KIND,
    "haystack": _HAYSTACK,
}


def trial_rows(
    run: str,
    db: str = "",
    places: str | None = None,
    events_where: str = "",
    places_where: str = "",
    log: str | None = None,
) -> str:
    """The query of one run's trial rows, the run given as parameter `$<run>`, its places read
    from the table `places` (default: the store's `trial_places`); `events_where` and
    `places_where` (each ` AND ...`) narrow the events and the places read, `log` names what
    the events are read from (default: the store's `events`)."""
    events = _RUN_EVENTS.format(log=log or f"{db}events", run=run, where=events_where)
    places = _RUN_PLACES.format(places=places or f"{db}trial_places", run=run, where=places_where)
    return _TRIAL_ROWS.format(chars=RESPONSE_CHARS, places=places, events=events, **_PARTS)


class PlannedPlaces:
    """The places of each run, in a table a query may join: the store's `trial_places` when it
    keeps the run's, else a table of places planned from the run's snapshot in the database
    `database(con)` names (a catalog prefix such as `"viewer."`, or `""` for the connection's
    default database; asked only when some run needs planning)."""

    def __init__(self, database: Callable[[Any], str] = lambda con: "") -> None:
        self._database = database
        self._planned: dict[str, str] = {}  # run id -> its planned places' table
        # Run id -> its places as `INSERT_PLACES` parameters, from a plan read already (`give`).
        self._given: dict[str, Callable[[], list[Any]]] = {}
        self._lock = threading.Lock()

    def give(self, run_id: str, columns: Callable[[], list[Any]]) -> None:
        """Where the run's places come from if the store keeps none: `columns()` (e.g. the refs
        of a plan its caller read already, ADR 0057), not the run's snapshot planned again."""
        with self._lock:
            self._given.setdefault(run_id, columns)

    def table(self, con: Any, run_id: str, store: str = "") -> str:
        """The table holding the run's places, for queries on `con`, where the store's tables
        are named with the prefix `store` (e.g. `"store.main."`, or `""` in its own
        connection)."""
        with self._lock:
            planned = self._planned.get(run_id)
            if planned is not None:
                return planned
            kept = f"{store}trial_places"
            if self._keeps(con, kept, store, run_id):
                return kept
            given = self._given.pop(run_id, None)
            columns = given() if given is not None else self._of_snapshot(con, store, run_id)
            if columns is None:  # nothing to place its events by: as the store has them
                return kept
            planned = f"{self._database(con)}planned_places_{next(_NAMES)}"
            con.execute(PLACES_TABLE.replace("IF NOT EXISTS trial_places", planned))
            con.execute(INSERT_PLACES.replace("trial_places", planned), columns)
            self._planned[run_id] = planned
            return planned

    @staticmethod
    def _of_snapshot(con: Any, store: str, run_id: str) -> list[Any] | None:
        """The run's places planned from its stored snapshot (`None` without one, or one that
        does not compile here: the pages say so through the report)."""
        found = stored_text(con, run_id, store)
        try:
            return None if found is None else place_columns(decode_snapshot(found))
        except StoreError:
            return None

    @staticmethod
    def _keeps(con: Any, kept: str, store: str, run_id: str) -> bool:
        catalog = store.split(".", maxsplit=1)[0] if store else None
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'trial_places'"
            " AND database_name = coalesce($1, current_database())",
            [catalog],
        ).fetchone()
        if not exists or not exists[0]:
            return False
        held = con.execute(f"SELECT 1 FROM {kept} WHERE run_id = $1 LIMIT 1", [run_id])
        return held.fetchone() is not None


@attrs.frozen
class LogParts:
    """Where a narrow query reads each part of a run's log from: relations of the run's events
    (`seq`, `kind`, `payload`; `failures` with `trial_key` too, `generations` with `kind` and
    `trial_key` only), each as narrow as its reader allows (`LogBrowser`: the batch rows
    holding such events, split with only the columns read)."""

    resets: str
    payloads: str
    failures: str
    generations: str


@attrs.frozen
class NarrowRows:
    """The query of some columns of each of one run's trials, by the same rules as `trial_rows`
    but parsing only the payloads those columns need: called with the run's parameter name
    (`$<run>`), the table of its places and the parts of its log it reads. `name` names what
    it reads (a table of them is named after it)."""

    name: str
    template: str

    def __call__(self, run: str, places: str, parts: LogParts) -> str:
        return self.template.format(
            places=_RUN_PLACES.format(places=places, run=run, where=""),
            payloads=parts.payloads,
            failures=parts.failures,
            generations=parts.generations,
            **_PARTS,
        )


# What a search, or a sort by a place's column or the status, reads of each trial (plan
# position, trial key, case, model, prompt, status, error kind, the words searched): the log's
# parses, scores, resets, failures and which keys were generated.
search_rows = NarrowRows("search_rows", _SEARCH_ROWS)
# What a sort by latency or output tokens reads of each trial (plan position, those two): the
# log's generations.
timing_rows = NarrowRows("timing_rows", _TIMING_ROWS)


def metric_rows(run: str, metrics: int, places: str, logs: LogParts) -> str:
    """The query of each trial of run `$<run>` (its places in the table `places`) with its
    status if settled and its value on each of `metrics` metrics (see `_METRIC_ROWS`); the
    caller gives the metrics' JSON pointers as `$metric_path<i>` (`metric_path`)."""
    return _METRIC_ROWS.format(
        resets=logs.resets,
        floors=_FLOORS,
        values="".join(", " + _METRIC_VALUE.format(at=3 + i, i=i) for i in range(metrics)),
        paths="".join(f", $metric_path{i}" for i in range(metrics)),
        scores=logs.payloads,
        failures=logs.failures,
        generations=logs.generations,
        columns="".join(f", s.v{i}" for i in range(metrics)),
        places=_RUN_PLACES.format(places=places, run=run, where=""),
    )


def metric_path(metric: str) -> str:
    """The JSON pointer of `metric`'s value in a score's payload."""
    return "/scores/" + metric.replace("~", "~0").replace("/", "~1")


def case_values(trials: str, metrics: int) -> str:
    """The query of each case's values (see `_CASE_VALUES`) from the trial rows `trials`."""
    return _CASE_VALUES.format(
        settled=_SETTLED,
        sums="".join(_CASE_VALUE.format(i=i, settled=_SETTLED) for i in range(metrics)),
        values="".join(
            f", CASE WHEN status = 'failed' THEN 0.0 ELSE v{i} END AS y{i}" for i in range(metrics)
        ),
        trials=trials,
    )

"""The event log as data: the `trial_places` table and the views `trials`, `generations`,
`scores`, `failures`, `retries` and `cases` (documented in `docs/reference/store.md`).

Events name a trial by its keys only; where a trial belongs (dataset, case, prompt, model,
sample) comes from the plan, so each run's plan is kept once in `trial_places`: a run's
execution writes the keys it planned as it went (`DuckDBStore.save_places`, no second planning
pass) once it has read the whole plan (ADR 0073); a snapshot saved otherwise (`themis plan`,
an imported bundle) gets its places planned then; a run killed before its places were kept, or
stored before `trial_places` existed, gets them planned when a writer next opens the store.
Each view reads the log with the fold's rules (`themis.core.state`): a key's first generation;
the failure of the latest execution that failed it, unless a generation came later; the parse
and score of the highest epoch, void when older than the latest reset of their stage.

The SQL is written once, over `{events}` and `{places}`: in the store file it names the
store's own tables; `read_log_table` runs it over an attached read-only store, with the places
computed in memory when an older store has none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Final

from themis.adapters.json_text import compact_encoder
from themis.adapters.stores.duckdb_snapshot import SNAPSHOTS
from themis.core.builtins import builtin_plugins
from themis.core.planner import TrialRef, compile_stored, trial_refs
from themis.core.plugins import recorded_plugins
from themis.core.snapshot import RunSnapshot

__all__ = [
    "PLACES_TABLE",
    "VIEWS_VERSION",
    "VIEW_NAMES",
    "create_views",
    "holds_places",
    "holds_places_table",
    "insert_places",
    "insert_places_like",
    "outdated_views",
    "place_columns",
    "ref_columns",
    "store_places",
    "view_sql",
]

# No primary key: a run's places are written once, in one transaction (`store_places` checks),
# and an index would double the insert's cost.
PLACES_TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS trial_places ("
    " run_id VARCHAR, trial_id VARCHAR, trial_key VARCHAR, dataset VARCHAR, case_id VARCHAR,"
    " prompt VARCHAR, model VARCHAR, provider VARCHAR, sample INTEGER, position BIGINT)"
)
# Each column after the run id comes as the JSON text of its list (`ref_columns`), which DuckDB
# splits itself: as nine list parameters, DuckDB's client took each of a part's values from a
# Python object of its own, and 10,000 places took 71 ms to insert and commit; as texts, 55
# (ADR 0071). JSON's escapes keep every text exact, whatever characters a case id holds.
INSERT_PLACES: Final = (
    "INSERT INTO trial_places SELECT $1, unnest(from_json($2, '[\"VARCHAR\"]')),"
    " unnest(from_json($3, '[\"VARCHAR\"]')), unnest(from_json($4, '[\"VARCHAR\"]')),"
    " unnest(from_json($5, '[\"VARCHAR\"]')), unnest(from_json($6, '[\"VARCHAR\"]')),"
    " unnest(from_json($7, '[\"VARCHAR\"]')), unnest(from_json($8, '[\"VARCHAR\"]')),"
    " unnest(from_json($9, '[\"INTEGER\"]')), unnest(from_json($10, '[\"BIGINT\"]'))"
)

PLACES_PART: Final = 2_000  # places inserted per statement (`insert_places`)
# Run `$src`'s places kept again as run `$run`'s (`insert_places_like`).
_COPY_PLACES: Final = (
    "INSERT INTO trial_places SELECT $run, trial_id, trial_key, dataset, case_id, prompt, model,"
    " provider, sample, position FROM trial_places WHERE run_id = $src"
)
# Run `$1`'s places summed up: how many, its providers by model, and whether each sample index
# is its position modulo `$2` (a run of `$2` samples a case).
_PLACES_SUMMED: Final = (
    "SELECT count(*), list(DISTINCT [model, provider]),"
    " coalesce(bool_and(sample = position % $2), true){} FROM trial_places WHERE run_id = $1"
)
_PLACES_COUNTED: Final = _PLACES_SUMMED.format("")
# The same and a digest of where each trial id and key sits (`_places_count_and_digest`: a sum
# over the trials, so DuckDB neither sorts nor joins them: ~5 MiB where fetching the ids and
# keys, or aggregating them in order, held 40-80 MiB at 100k).
_PLACES_OF: Final = _PLACES_SUMMED.format(
    ", sum(('0x' || left(md5(position::VARCHAR || ' ' || trial_id || ' ' || trial_key), 16))"
    "::UBIGINT::HUGEINT)"
)

# The latest reset epoch voiding each stage: a reset of S voids S and every later stage.
_FLOORS = """
floors AS (
  SELECT r.run_id,
    coalesce(max(CASE WHEN r.stage IN ('generate', 'reduce', 'parse') THEN r.epoch END), 0)
      AS parse_floor,
    coalesce(max(CASE WHEN r.stage IN ('generate', 'reduce', 'parse', 'score') THEN r.epoch END),
      0) AS score_floor
  FROM (SELECT run_id, payload::JSON->>'reset_stage' AS stage,
          CAST(payload::JSON->>'epoch' AS BIGINT) AS epoch
        FROM {events} WHERE kind = 'stage_reset') r
  GROUP BY r.run_id
)"""

_CURRENT = (
    "WITH"
    + _FLOORS
    + """,
generated AS (
  SELECT run_id, trial_key, seq, payload::JSON AS p FROM {events}
  WHERE kind = 'generation_completed'
  QUALIFY row_number() OVER (PARTITION BY run_id, trial_key ORDER BY seq) = 1
),
failed AS (
  SELECT run_id, trial_key, payload::JSON AS p FROM {events} WHERE kind = 'generation_failed'
  QUALIFY row_number() OVER (PARTITION BY run_id, trial_key
    ORDER BY coalesce(CAST(payload::JSON->>'execution' AS BIGINT), 0) DESC, seq) = 1
),
parsed AS (
  SELECT e.run_id, e.p->>'trial_id' AS trial_id, e.p FROM (
    SELECT run_id, seq, payload::JSON AS p FROM {events} WHERE kind = 'parse_completed') e
  LEFT JOIN floors f ON f.run_id = e.run_id
  WHERE coalesce(CAST(e.p->>'epoch' AS BIGINT), 0) >= coalesce(f.parse_floor, 0)
  QUALIFY row_number() OVER (PARTITION BY e.run_id, e.p->>'trial_id'
    ORDER BY coalesce(CAST(e.p->>'epoch' AS BIGINT), 0) DESC, e.seq) = 1
),
scored AS (
  SELECT e.run_id, e.p->>'trial_id' AS trial_id,
    CAST(e.p->'scores' AS MAP(VARCHAR, DOUBLE)) AS scores FROM (
    SELECT run_id, seq, payload::JSON AS p FROM {events} WHERE kind = 'score_completed') e
  LEFT JOIN floors f ON f.run_id = e.run_id
  WHERE coalesce(CAST(e.p->>'epoch' AS BIGINT), 0) >= coalesce(f.score_floor, 0)
  QUALIFY row_number() OVER (PARTITION BY e.run_id, e.p->>'trial_id'
    ORDER BY coalesce(CAST(e.p->>'epoch' AS BIGINT), 0) DESC, e.seq) = 1
)"""
)

_TRIALS = (
    _CURRENT
    + """
SELECT t.run_id, t.trial_id, t.trial_key, t.dataset, t.case_id, t.prompt, t.model, t.provider,
  t.sample,
  CASE WHEN s.trial_id IS NOT NULL THEN 'scored'
       WHEN g.trial_key IS NOT NULL THEN 'generated'
       WHEN f.trial_key IS NOT NULL THEN 'failed'
       ELSE 'pending' END AS status,
  s.scores,
  pa.p->>'answer' AS answer,
  pa.p->>'error' AS parse_error,
  g.p->>'finish_reason' AS finish_reason,
  CAST(g.p->>'latency_s' AS DOUBLE) AS latency_s,
  CAST(g.p->>'input_tokens' AS BIGINT) AS input_tokens,
  CAST(g.p->>'output_tokens' AS BIGINT) AS output_tokens,
  g.p->>'served_model' AS served_model,
  CAST(g.p->>'cache_hit' AS BOOLEAN) AS cache_hit,
  CASE WHEN g.trial_key IS NULL THEN f.p->>'error_kind' END AS error_kind
FROM {places} t
LEFT JOIN generated g ON g.run_id = t.run_id AND g.trial_key = t.trial_key
LEFT JOIN failed f ON f.run_id = t.run_id AND f.trial_key = t.trial_key
LEFT JOIN parsed pa ON pa.run_id = t.run_id AND pa.trial_id = t.trial_id
LEFT JOIN scored s ON s.run_id = t.run_id AND s.trial_id = t.trial_id
ORDER BY t.run_id, t.position"""
)

_SCORES = (
    _CURRENT
    + """
SELECT t.run_id, t.trial_id, t.trial_key, t.dataset, t.case_id, t.prompt, t.model, t.provider,
  t.sample, s.entry.key AS metric, s.entry.value AS score
FROM {places} t
JOIN (SELECT run_id, trial_id, unnest(map_entries(scores)) AS entry FROM scored) s
  ON s.run_id = t.run_id AND s.trial_id = t.trial_id
ORDER BY t.run_id, t.position, metric"""
)

# One model and provider per key (two places share a key only when they render identically).
_KEYED = (
    "(SELECT run_id, trial_key, min(model) AS model, min(provider) AS provider"
    " FROM {places} GROUP BY run_id, trial_key)"
)

_GENERATIONS = (
    """
SELECT e.run_id, e.seq, to_timestamp(e.recorded_at) AS recorded_at, e.trial_key, k.model,
  k.provider,
  e.p->>'served_model' AS served_model, e.p->>'text' AS text,
  e.p->>'finish_reason' AS finish_reason,
  CAST(e.p->>'input_tokens' AS BIGINT) AS input_tokens,
  CAST(e.p->>'output_tokens' AS BIGINT) AS output_tokens,
  CAST(e.p->>'latency_s' AS DOUBLE) AS latency_s,
  CAST(e.p->>'attempts' AS INTEGER) AS attempts,
  CAST(e.p->>'cache_hit' AS BOOLEAN) AS cache_hit,
  e.p->>'source_run' AS source_run
FROM (SELECT *, payload::JSON AS p FROM {events} WHERE kind = 'generation_completed') e
LEFT JOIN """
    + _KEYED
    + """ k ON k.run_id = e.run_id AND k.trial_key = e.trial_key
ORDER BY e.run_id, e.seq"""
)

_FAILURES = (
    """
SELECT e.run_id, e.seq, to_timestamp(e.recorded_at) AS recorded_at, e.trial_key, k.model,
  k.provider,
  e.p->>'error_kind' AS error_kind, e.p->>'message' AS message,
  CAST(e.p->>'attempts' AS INTEGER) AS attempts,
  coalesce(CAST(e.p->>'execution' AS BIGINT), 0) AS execution,
  (NOT EXISTS (SELECT 1 FROM {events} g WHERE g.kind = 'generation_completed'
     AND g.run_id = e.run_id AND g.trial_key = e.trial_key)
   AND row_number() OVER (PARTITION BY e.run_id, e.trial_key
     ORDER BY coalesce(CAST(e.p->>'execution' AS BIGINT), 0) DESC, e.seq) = 1) AS current
FROM (SELECT *, payload::JSON AS p FROM {events} WHERE kind = 'generation_failed') e
LEFT JOIN """
    + _KEYED
    + """ k ON k.run_id = e.run_id AND k.trial_key = e.trial_key
ORDER BY e.run_id, e.seq"""
)

_RETRIES = (
    """
SELECT e.run_id, e.seq, to_timestamp(e.recorded_at) AS recorded_at, e.trial_key, k.model,
  k.provider,
  CAST(e.p->>'attempt' AS INTEGER) AS attempt, e.p->>'error_kind' AS error_kind,
  CAST(e.p->>'status' AS INTEGER) AS status, CAST(e.p->>'delay_s' AS DOUBLE) AS delay_s,
  CAST(e.p->>'retry_after_s' AS DOUBLE) AS retry_after_s, e.p->>'message' AS message
FROM (SELECT *, payload::JSON AS p FROM {events} WHERE kind = 'generation_retried') e
LEFT JOIN """
    + _KEYED
    + """ k ON k.run_id = e.run_id AND k.trial_key = e.trial_key
ORDER BY e.run_id, e.seq"""
)

# The cases of each run as its stored spec holds them (`fields`: every field of the case, JSON).
_CASES = """
WITH datasets AS (
  SELECT r.run_id, unnest(CAST(r.snapshot::JSON->'spec'->'datasets' AS JSON[])) AS d,
    generate_subscripts(CAST(r.snapshot::JSON->'spec'->'datasets' AS JSON[]), 1) AS d_index
  FROM {runs} r
),
cases AS (
  SELECT run_id, d_index, d->>'name' AS dataset, unnest(CAST(d->'cases' AS JSON[])) AS c,
    generate_subscripts(CAST(d->'cases' AS JSON[]), 1) AS c_index
  FROM datasets
)
SELECT run_id, dataset, c->>'id' AS case_id, c->>'expected' AS expected, c->'fields' AS fields
FROM cases
ORDER BY run_id, d_index, c_index"""

_VIEWS: Final = {
    "trials": _TRIALS,
    "generations": _GENERATIONS,
    "scores": _SCORES,
    "failures": _FAILURES,
    "retries": _RETRIES,
    "cases": _CASES,
}
VIEW_NAMES: Final = tuple(_VIEWS)


def view_sql(
    name: str, events: str = "events", places: str = "trial_places", runs: str = SNAPSHOTS
) -> str:
    """The query behind view `name`, over the given events and places tables and relation of
    the runs' snapshot texts (`duckdb_snapshot.snapshots`)."""
    return _VIEWS[name].format(events=events, places=places, runs=runs)


# Bumped whenever a view's definition changes: a writer opening the store then redefines them.
VIEWS_VERSION: Final = 2  # 2: `cases` reads a large run's snapshot from its parts (ADR 0096)


def create_views(con: Any) -> None:
    """Create (or redefine) every view in the store `con` holds, and record their version."""
    for name in VIEW_NAMES:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {view_sql(name)}")
    con.execute("DELETE FROM meta WHERE key = 'views_version'")
    con.execute("INSERT INTO meta VALUES ('views_version', $1)", [str(VIEWS_VERSION)])


def outdated_views(con: Any) -> bool:
    """Whether some view is missing from the store `con` holds, or defined by another version."""
    row = con.execute("SELECT value FROM meta WHERE key = 'views_version'").fetchone()
    if row is None or row[0] != str(VIEWS_VERSION):
        return True
    names = {
        name
        for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = current_database()"
            " UNION ALL SELECT table_name FROM duckdb_tables()"
            " WHERE database_name = current_database()"
        ).fetchall()
    }
    return not names.issuperset({*VIEW_NAMES, "trial_places"})


def _planned_refs(snapshot: RunSnapshot) -> Iterator[TrialRef] | None:
    """The run's places planned from its snapshot, or `None` when its stored spec does not
    compile to its run id (nothing to place its events by)."""
    plugins = recorded_plugins(snapshot.provenance, builtin_plugins())
    compiled = compile_stored(snapshot.spec, snapshot.run_id, plugins)
    return None if compiled is None else trial_refs(compiled)


def place_columns(snapshot: RunSnapshot) -> list[Any] | None:
    """The run's places as `INSERT_PLACES` parameters, planned from its snapshot, or `None`
    when its stored spec does not compile to its run id (nothing to place its events by)."""
    refs = _planned_refs(snapshot)
    return None if refs is None else ref_columns(snapshot, refs)


def ref_columns(snapshot: RunSnapshot, refs: Iterable[TrialRef], start: int = 0) -> list[Any]:
    """The places of `refs` (every trial of the run from position `start`, in plan order) as
    `INSERT_PLACES` parameters: the run id, then each column's list as JSON text."""
    providers = {model.name: model.provider for model in snapshot.spec.models}
    samples = snapshot.spec.samples
    ids, keys, datasets, cases, prompts, models = [], [], [], [], [], []
    for ref in refs:
        ids.append(ref.trial_id)
        keys.append(ref.trial_key)
        datasets.append(ref.dataset)
        cases.append(ref.case_id)
        prompts.append(ref.prompt)
        models.append(ref.model)
    positions = range(start, start + len(ids))
    columns = [
        ids,
        keys,
        datasets,
        cases,
        prompts,
        models,
        [providers[model] for model in models],
        [position % samples for position in positions],
        list(positions),
    ]
    return [snapshot.run_id, *(_JSON_LIST(column) for column in columns)]


_JSON_LIST = compact_encoder()  # a column's list as text, for `INSERT_PLACES`


def holds_places(con: Any, run_id: str, table: str = "trial_places") -> bool:
    """Whether the store `con` holds keeps the run's places (in `table`)."""
    row = con.execute(f"SELECT 1 FROM {table} WHERE run_id = $1 LIMIT 1", [run_id]).fetchone()
    return row is not None


def holds_places_table(con: Any) -> bool:
    """Whether the store `con` holds has a table of places (a store older than them, read
    without migrating it, has none)."""
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'trial_places'")
    return bool(found.fetchone()[0])


def kept_places(con: Any, run_id: str) -> list[tuple[str, str]] | None:
    """Each trial's id and key among the run's kept places (one pair per trial, in plan order:
    a derived replay takes its source's trials from them, ADR 0107), or `None` if the store
    keeps none of the run (or no table of them: a store older than them, read without
    migrating it)."""
    if not holds_places_table(con):
        return None
    rows = con.execute(
        "SELECT trial_id, trial_key FROM trial_places WHERE run_id = $1 ORDER BY position",
        [run_id],
    ).fetchall()
    return rows or None


def store_places(con: Any, snapshot: RunSnapshot) -> None:
    """Keep the run's places, planned from its snapshot, unless they are kept already (a run's
    plan never changes)."""
    if holds_places(con, snapshot.run_id):
        return
    refs = _planned_refs(snapshot)
    if refs is not None:
        insert_places(con, snapshot, refs)


def insert_places(con: Any, snapshot: RunSnapshot, refs: Iterable[TrialRef]) -> None:
    """Insert the places `refs` (every trial of `snapshot`'s run, in plan order) in parts of
    `PLACES_PART`, in the caller's transaction: DuckDB holds what a statement's parameters carry
    while it runs (100k places as list parameters: +76 MiB in parts of 20,000, +43 in parts of
    2,000, ADR 0048; as the JSON texts of `ref_columns`, the same RSS, ADR 0071)."""
    remaining, start = iter(refs), 0
    while part := list(islice(remaining, PLACES_PART)):
        con.execute(INSERT_PLACES, ref_columns(snapshot, part, start))
        start += len(part)


def insert_places_like(
    con: Any,
    snapshot: RunSnapshot,
    refs: Iterable[TrialRef],
    source_run: str,
    *,
    places_from: str | None = None,
) -> None:
    """`insert_places`, copying run `source_run`'s places in SQL instead when they are the same
    trials in the same order: a run derived by a replay (another metric or parser) plans its
    source's trials again, and 100k places passed as list parameters cost ~0.8-1.2 s of CPU
    where the check and the copy cost ~0.5 (ADR 0063). Any difference (another plan, other
    providers, a source without places) inserts `refs` as `insert_places` does.

    `refs` that can be read again (an iterable that is not its own iterator) are read twice
    when they differ, and never held at once: 100k `TrialRef`s listed stood ~20 MiB over a
    derived replay's peak, beside its report (ADR 0094). A one-shot iterator is listed.

    `places_from` `source_run`: the caller took the trials from the source's kept places, in
    order (a derived replay's, ADR 0112): only their count is compared, not their ids and keys
    (0.2-0.3 s of CPU at 100k, ~0.17 of it digesting `refs` in Python beside the run's
    trials)."""
    if places_from == source_run:
        row = con.execute(_PLACES_COUNTED, [source_run, snapshot.spec.samples]).fetchone()
        if row is not None and row[0] == snapshot.spec.trial_count and _same_models(row, snapshot):
            con.execute(_COPY_PLACES, {"run": snapshot.run_id, "src": source_run})
            return
    if iter(refs) is refs:
        refs = list(refs)
    row = con.execute(_PLACES_OF, [source_run, snapshot.spec.samples]).fetchone()
    same = (
        row is not None
        and _same_models(row, snapshot)
        and (row[0], row[3]) == _places_count_and_digest(refs)
        and row[0] > 0
    )
    if same:
        con.execute(_COPY_PLACES, {"run": snapshot.run_id, "src": source_run})
    else:
        insert_places(con, snapshot, refs)


def _same_models(row: tuple[Any, ...], snapshot: RunSnapshot) -> bool:
    """Whether a `_PLACES_COUNTED` (or `_PLACES_OF`) row's providers by model are `snapshot`'s,
    and each of its samples its position modulo the snapshot's count."""
    providers = sorted([model.name, model.provider] for model in snapshot.spec.models)
    return bool(row[2]) and sorted(row[1]) == providers


def _places_count_and_digest(refs: Iterable[TrialRef]) -> tuple[int, int]:
    """How many `refs` there are and `_PLACES_OF`'s digest of them at positions 0, 1, ...: the
    sum of the first 64 bits of the md5 of each one's position, trial id and key; in one
    reading, holding none of them after its turn."""
    count = digest = 0
    for position, ref in enumerate(refs):
        text = f"{position} {ref.trial_id} {ref.trial_key}"
        digest += int(hashlib.md5(text.encode()).hexdigest()[:16], 16)
        count = position + 1
    return count, digest


def runs_without_places(con: Any) -> Iterator[str]:
    """The stored runs whose places are not kept (stores written before `trial_places`)."""
    rows = con.execute(
        "SELECT run_id FROM runs WHERE run_id NOT IN (SELECT DISTINCT run_id FROM trial_places)"
    ).fetchall()
    for (run_id,) in rows:
        yield run_id

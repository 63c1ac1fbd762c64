"""One case of a stored run read alone (ADR 0066): the run's snapshot cut to that case by DuckDB,
the trials the store placed for it when the run ran, and their events. What the viewer's case
page needs, where decoding the whole snapshot and compiling the run cost ~0.65 s of CPU at
50,000 cases; this reads ~30 ms worth of the snapshot's JSON and a few log rows.

DuckDB's cut parses the whole text (~2 s of CPU and ~1.5 GiB at 1M cases). A run whose outline
is kept (ADR 0077) is cut without parsing it: the case's text is found by the way every case
begins (`{"id":ID,"fields":`), once in the whole text, and set in the kept outline's dataset
the store placed the case in. Anything else (no kept outline, its text changed since, the case
begun twice, in several datasets, or longer than a window) is cut by DuckDB as before; either
cut is then checked by its trials' keys (`compile_case`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from themis.adapters.codec import decode_event, decode_snapshot
from themis.adapters.duckdb_engine import duckdb
from themis.adapters.json_text import compact_encoder
from themis.adapters.stores.duckdb_log import batched, events_of_rows, keyed_rows
from themis.adapters.stores.duckdb_outline import KEPT_OUTLINE, kept_outline
from themis.adapters.stores.duckdb_snapshot import searched_parts, snapshots
from themis.adapters.stores.duckdb_views import holds_places
from themis.core.events import Event
from themis.core.snapshot import RunSnapshot

__all__ = ["KEYED_EVENTS", "CaseReading", "read_case"]

# The snapshot of run `$run` with each dataset's `cases` cut to those whose id is `$case` (a
# merge patch replaces an array whole and keeps every other value as stored). `{runs}`: the
# relation of the runs' texts (`duckdb_snapshot.snapshots`).
_ONE_CASE: Final = (
    "SELECT json_merge_patch(s, json_object('spec', json_object('datasets',"
    "   to_json(list_transform(json_extract(s, '$.spec.datasets[*]'),"
    "     lambda d: json_merge_patch(d, json_object('cases', to_json(list_filter("
    "       json_extract(d, '$.cases[*]'), lambda c: json_extract_string(c, '$.id') = $case)))))"
    "   )))) AS snapshot"
    " FROM (SELECT snapshot AS s FROM {runs} WHERE run_id = $run)"
)
# The kept outline of run `$run` if it is still the outline of its text, where the text's first
# `$begun` begins, whether another does after it, and `$window` characters from the first (a
# text in `runs.snapshot`; one in parts is searched as it is read: `searched_parts`).
_KEPT_CASE: Final = (
    "SELECT o.outline, r.at, r.at > 0 AND position($begun IN substr(r.s, r.at + 1)) > 0,"
    "   substr(r.s, r.at, $window)"
    " FROM (SELECT run_id, snapshot AS s, sha256(snapshot) AS stored_as,"
    "   position($begun IN snapshot) AS at FROM runs WHERE run_id = $run) r"
    " JOIN run_outlines o ON o.run_id = r.run_id AND o.stored_as = r.stored_as"
)
_WINDOW: Final = 1 << 20  # a case longer than this is cut by DuckDB
_DATASETS: Final = (
    "SELECT DISTINCT dataset FROM trial_places WHERE run_id = $run AND case_id = $case"
)
# A snapshot's text escapes as `duckdb_outline`'s writer (the codec) does: ASCII.
_ENCODE: Final = compact_encoder()
# The trials of case `$case` as the store placed them (not planned places: a run the store keeps
# none of is not read here).
_PLACED: Final = (
    "SELECT trial_id, trial_key FROM trial_places WHERE run_id = $run AND case_id = $case"
)
# The run's events about the keys `$keys` and its own (no trial key: start, reset, completion,
# judge verdicts), from `{log}`: `events`, or only the batch rows that may hold them.
KEYED_EVENTS: Final = (
    "SELECT seq, kind, payload FROM {log} WHERE run_id = $run AND (trial_key IS NULL"
    " OR list_contains($keys::VARCHAR[], trial_key)) ORDER BY seq"
)


@attrs.frozen
class CaseReading:
    """A case of a stored run as the store holds it: the run's snapshot with only that case
    in each dataset (none where a dataset lacks it), its trials as placed when the run ran
    (trial id -> trial key), and the run's events about those keys and its own, in seq
    order."""

    snapshot: RunSnapshot
    placed: Mapping[str, str]
    events: Sequence[tuple[int, Event]]


def read_case(cursor: Any, run_id: str, case_id: str) -> CaseReading | None:
    """Case `case_id` of run `run_id` from the store `cursor` reads (its unqualified tables);
    `None` when the store has no snapshot of the run or keeps no places of it (a run executing
    now, one killed before its execution ended, a store older than places): its trials would
    have to be planned from the whole run."""
    try:
        if not holds_places(cursor, run_id):
            return None
        text = _kept_case(cursor, run_id, case_id)
        if text is None:
            one_case = _ONE_CASE.replace("{runs}", snapshots(cursor))
            row = cursor.execute(one_case, {"run": run_id, "case": case_id}).fetchone()
            if row is None:
                return None
            text = row[0]
        placed = dict(cursor.execute(_PLACED, {"run": run_id, "case": case_id}).fetchall())
    except duckdb.CatalogException:  # a store older than places
        return None
    keys = sorted(set(placed.values()))
    parameters: dict[str, Any] = {"run": run_id, "keys": keys}
    log = "events"
    if batched(cursor):  # only the log's rows holding those keys' events (or the run's own)
        rows_kept, needles = keyed_rows(keys)
        log = events_of_rows("", rows_kept)
        parameters |= needles
    rows = cursor.execute(KEYED_EVENTS.format(log=log), parameters).fetchall()
    return CaseReading(
        snapshot=decode_snapshot(text),
        placed=placed,
        events=[(seq, decode_event(kind, payload)) for seq, kind, payload in rows],
    )


def _kept_case(cursor: Any, run_id: str, case_id: str) -> str | None:
    """The run's snapshot text cut to case `case_id` from its kept outline and the case's own
    text (see the module docstring); `None` when it is to be cut by DuckDB."""
    datasets = cursor.execute(_DATASETS, {"run": run_id, "case": case_id}).fetchall()
    if len(datasets) != 1 or not kept_outline(cursor, run_id):
        return None
    begun = f'{{"id":{_ENCODE(case_id)},"fields":'
    parameters = {"run": run_id, "begun": begun, "window": _WINDOW}
    searched = searched_parts(cursor, run_id, begun, _WINDOW)
    if searched is None:
        row = cursor.execute(_KEPT_CASE, parameters).fetchone()
    else:
        stored_as, at, again, window = searched
        kept = cursor.execute(KEPT_OUTLINE, {"run": run_id, "stored_as": stored_as}).fetchone()
        row = None if kept is None else (kept[0], at, again, window)
    if row is None or not row[1] or row[2]:
        return None
    try:
        case, _ = json.JSONDecoder().raw_decode(row[3])
    except ValueError:  # longer than the window
        return None
    outline = json.loads(row[0])
    held = [d for d in outline["spec"]["datasets"] if d["name"] == datasets[0][0]]
    if not isinstance(case, dict) or case.get("id") != case_id or len(held) != 1:
        return None
    held[0]["cases"] = [case]
    return json.dumps(outline)

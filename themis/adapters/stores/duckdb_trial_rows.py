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

from themis.adapters.codec import decode_snapshot
from themis.adapters.stores.duckdb_views import (
    INSERT_PLACES,
    PLACES_TABLE,
    place_columns,
    view_sql,
)
from themis.core.errors import StoreError

__all__ = ["RESPONSE_CHARS", "PlannedPlaces", "trial_rows"]

# The response text a trials page carries per row (the case page shows all of it).
RESPONSE_CHARS = 300
_NAMES = itertools.count()

# The log of one run, filtered before the views' window functions read it; `{db}` names the
# database holding the store (empty in the store's own connection), `{run}` the run parameter.
_RUN_EVENTS = "(SELECT * FROM {db}events WHERE run_id = ${run}{where})"
_RUN_PLACES = "(SELECT * FROM {places} WHERE run_id = ${run}{where})"
# A run's trials as the `trials` view has them, plus the start of the response, the plan
# position and the words a search looks in: every page of trials, failures and disagreements
# reads these rows.
_TRIAL_ROWS = (
    "SELECT t.*, left(g.p->>'text', {chars}) AS response, p.position,"
    " lower(concat_ws(' ', t.dataset, t.case_id, t.model, t.prompt, t.status, t.answer,"
    " t.error_kind)) AS haystack"
    " FROM ({trials}) t JOIN {places} p ON p.trial_id = t.trial_id"
    " LEFT JOIN (SELECT trial_key, payload::JSON AS p FROM {events}"
    "   WHERE kind = 'generation_completed'"
    "   QUALIFY row_number() OVER (PARTITION BY trial_key ORDER BY seq) = 1) g"
    "   ON g.trial_key = t.trial_key"
)


def trial_rows(
    run: str,
    db: str = "",
    places: str | None = None,
    events_where: str = "",
    places_where: str = "",
) -> str:
    """The query of one run's trial rows, the run given as parameter `$<run>`, its places read
    from the table `places` (default: the store's `trial_places`); `events_where` and
    `places_where` (each ` AND ...`) narrow the events and the places read."""
    events = _RUN_EVENTS.format(db=db, run=run, where=events_where)
    places = _RUN_PLACES.format(places=places or f"{db}trial_places", run=run, where=places_where)
    trials = view_sql("trials", events=events, places=places)
    return _TRIAL_ROWS.format(chars=RESPONSE_CHARS, trials=trials, places=places, events=events)


class PlannedPlaces:
    """The places of each run, in a table a query may join: the store's `trial_places` when it
    keeps the run's, else a table of places planned from the run's snapshot in the database
    `database(con)` names (a catalog prefix such as `"viewer."`, or `""` for the connection's
    default database; asked only when some run needs planning)."""

    def __init__(self, database: Callable[[Any], str] = lambda con: "") -> None:
        self._database = database
        self._planned: dict[str, str] = {}  # run id -> its planned places' table
        self._lock = threading.Lock()

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
            row = con.execute(f"SELECT snapshot FROM {store}runs WHERE run_id = $1", [run_id])
            found = row.fetchone()
            try:
                columns = None if found is None else place_columns(decode_snapshot(found[0]))
            except StoreError:  # unreadable here: the pages say so through the report
                columns = None
            if columns is None:  # nothing to place its events by: as the store has them
                return kept
            planned = f"{self._database(con)}planned_places_{next(_NAMES)}"
            con.execute(PLACES_TABLE.replace("IF NOT EXISTS trial_places", planned))
            con.execute(INSERT_PLACES.replace("trial_places", planned), columns)
            self._planned[run_id] = planned
            return planned

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

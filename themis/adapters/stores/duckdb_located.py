"""A run's kept places and where each of their keys' generations is, read in one statement
(ADR 0118).

A derived replay takes its source's trials from the source's places (ADR 0107) and locates each
trial key's generation (`locate_generations`: the earliest-created run's, other than the
derived run, its lowest seq). When the source is that earliest run, every generation its
places name is found in its own log: DuckDB joins its places with its log's events of the kind
and gives each place's id, key and seq in plan order (~0.14 s of CPU at 100k trials, where the
places' read, the search and the places built in Python took ~0.33).
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, Final

from themis.adapters.stores.duckdb_log import EVENTS_OF_KIND, first_logged_run
from themis.adapters.stores.duckdb_views import holds_places_table
from themis.core.generation import GenerationPlace

__all__ = ["located_places"]

# Each of run `$1`'s kept places in plan order, with the lowest seq of an event of kind `$2`
# about its key in the run's log (NULL: none).
_LOCATED: Final = (
    f"WITH found AS (SELECT key, min(seq + i) AS at FROM {EVENTS_OF_KIND} GROUP BY key)"
    " SELECT p.trial_id, p.trial_key, found.at FROM trial_places p"
    " LEFT JOIN found ON found.key = p.trial_key WHERE p.run_id = $1 ORDER BY p.position"
)


def located_places(
    con: Any, run_id: str, kind: str, exclude_run: str
) -> tuple[list[tuple[str, str]], dict[str, GenerationPlace]] | None:
    """Run `run_id`'s kept places (`kept_places`: `(trial_id, trial_key)` in plan order) and
    where `first_places_of_kind`'s rule finds each key's event of `kind` outside `exclude_run`,
    when `run_id` is the first run that rule reads and its own log holds every key's; `None`
    otherwise (no places kept, an earlier run, a key it lacks): the caller then reads the places
    and searches the keys as before."""
    if first_logged_run(con, exclude_run) != run_id or not holds_places_table(con):
        return None
    rows = con.execute(_LOCATED, [run_id, kind]).fetchall()
    if not rows:  # no places kept
        return None
    ids, keys, seqs = zip(*rows, strict=True)
    if None in seqs:  # a key not in the run's log
        return None
    made = tuple.__new__  # `GenerationPlace(run_id, seq)`, without its `__new__`'s Python frame
    places = zip(repeat(run_id), seqs)  # (`repeat` never ends: not strict)
    located = dict(zip(keys, map(made, repeat(GenerationPlace), places), strict=True))
    return list(zip(ids, keys, strict=True)), located

"""A run's outline: its stored snapshot without its datasets' cases, and the names of its cases'
fields, cut out of the snapshot's JSON by DuckDB (ADR 0051). What the viewer's first pages need
of a run (its name, metrics, provenance, what its rows may be grouped by): ~50 ms of CPU for
50,000 cases, where decoding the whole snapshot and compiling it costs ~0.65 s.
"""

from __future__ import annotations

from typing import Any, Final

from themis.adapters.codec import decode_snapshot
from themis.core.snapshot import RunSnapshot

__all__ = ["OUTLINE", "outline_of"]

# The snapshot with each dataset's `cases` emptied (`$run`: the run id), and the sorted field
# names of every case of every dataset. A merge patch replaces arrays whole, so the datasets'
# other values (nulls included) are kept as stored. The names come from `json_keys` given the
# path (~10 ms for 50,000 cases; extracting each case's fields first and listing their keys
# one by one cost ~23, ADR 0066).
OUTLINE: Final = (
    "SELECT json_merge_patch(s, json_object('spec', json_object('datasets',"
    "   to_json(list_transform(json_extract(s, '$.spec.datasets[*]'),"
    "     lambda d: json_merge_patch(d, '{\"cases\": []}')))))) AS outline,"
    " list_sort(list_distinct(flatten(json_keys(s, '$.spec.datasets[*].cases[*].fields'))))"
    "   AS fields"
    " FROM (SELECT snapshot AS s FROM runs WHERE run_id = $run)"
)


def outline_of(row: dict[str, Any] | None) -> tuple[RunSnapshot, tuple[str, ...]] | None:
    """The outline (a `RunSnapshot` whose datasets hold no cases) and the field names an
    `OUTLINE` row holds; `None` for no row. `StoreError` when the snapshot cannot be read."""
    if row is None:
        return None
    return decode_snapshot(row["outline"]), tuple(row["fields"] or ())

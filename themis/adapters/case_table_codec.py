"""A `CaseTable` as the bytes a store keeps beside a run's final checkpoint (ADR 0072).

One zlib-compressed body: an 8-byte little-endian length, a JSON head of that many bytes (the
format, the metrics, the row groups with their bounds, every row's case id), then the numeric
columns as little-endian arrays in a fixed order (each row's settled count; per metric its
means, its present values' sums and counts). Read back as numpy arrays over the body, with no
per-row Python object but the case ids. A body this code cannot read is a `StoreError`; its
reader then reads the run's log instead.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Final

from themis.core.case_table import CaseTable
from themis.core.errors import StoreError

__all__ = ["decode_case_table", "encode_case_table"]

_FORMAT: Final = 1
_LEVEL: Final = 1  # mostly 0s and 1s: the fastest level already shrinks it several times
_HEAD: Final = 8
_CASES_PART: Final = 65_536  # case ids turned into the head's text at a time


def encode_case_table(table: CaseTable) -> bytes:
    """`table` as the module docstring says, compressed as it is written: the head's case ids
    turned into text a part at a time and the columns fed to zlib from their arrays, with no
    `str` per row, nor the whole body, held at once (at 1M rows, ~0.1 GiB stood over the final
    checkpoint: ADR 0097)."""
    import numpy as np

    from themis.core.report_columns import case_texts

    head = {
        "format": _FORMAT,
        "metrics": list(table.metrics),
        "groups": [list(group) for group in table.groups],
        "bounds": table.bounds.tolist(),
    }
    cases = table.cases
    # `"cases": [...]` last, its items written a part at a time (as one `json.dumps` writes them).
    texts = [_json(head)[:-1].encode(), b',"cases":[']
    for start in range(0, len(cases), _CASES_PART):
        part = _json(case_texts(cases[start : start + _CASES_PART]).tolist())[1:-1].encode()
        texts += [b"," if start else b"", part]
    texts.append(b"]}")
    columns = (
        (table.settled.reshape(1, -1), "<i8"),
        (table.means, "<f8"),
        (table.present_sums, "<f8"),
        (table.present_counts, "<i8"),
    )
    compressing = zlib.compressobj(_LEVEL)
    length = sum(map(len, texts)).to_bytes(_HEAD, "little")
    written = [compressing.compress(length)]
    written += [compressing.compress(text) for text in texts]
    # Each metric's row of a column written a part at a time, in the body's types (a table
    # built at a run's end may hold its counts as `bool` or a broadcast 1: ADR 0103).
    for column, dtype in columns:
        for row in column:
            for start in range(0, len(row), _CASES_PART):
                values = np.ascontiguousarray(row[start : start + _CASES_PART], dtype=dtype)
                written.append(compressing.compress(values.data))
    written.append(compressing.flush())
    return b"".join(written)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode_case_table(blob: bytes) -> CaseTable:
    """The table `encode_case_table` wrote; `StoreError` for anything else."""
    try:
        return _decoded(zlib.decompress(blob))
    except (zlib.error, ValueError, KeyError, TypeError, IndexError) as error:
        raise StoreError(f"the run's case table cannot be read: {error}") from None


def _decoded(body: bytes) -> CaseTable:
    import numpy as np

    size = int.from_bytes(body[:_HEAD], "little")
    head: dict[str, Any] = json.loads(body[_HEAD : _HEAD + size])
    if head["format"] != _FORMAT:
        raise ValueError(f"format {head['format']!r}, not {_FORMAT}")
    metrics = tuple(str(metric) for metric in head["metrics"])
    rows = len(head["cases"])
    at = _HEAD + size

    def column(dtype: str, count: int) -> Any:
        nonlocal at
        found = np.frombuffer(body, dtype=dtype, count=count, offset=at)
        at += found.nbytes
        return found

    settled = column("<i8", rows)
    shape = (len(metrics), rows)
    means = column("<f8", len(metrics) * rows).reshape(shape)
    sums = column("<f8", len(metrics) * rows).reshape(shape)
    counts = column("<i8", len(metrics) * rows).reshape(shape)
    if at != len(body):
        raise ValueError(f"{len(body) - at} bytes left over")
    bounds = np.asarray(head["bounds"], dtype=np.int64)
    groups = tuple((str(d), str(m), str(p)) for d, m, p in head["groups"])
    if len(bounds) != len(groups) + 1 or bounds[-1] != rows:
        raise ValueError("its groups do not cover its rows")
    return CaseTable(
        metrics=metrics,
        groups=groups,
        bounds=bounds,
        cases=np.asarray(head["cases"], dtype=np.str_),
        settled=settled,
        means=means,
        present_sums=sums,
        present_counts=counts,
    )

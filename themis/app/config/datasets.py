"""Reading a dataset's cases from a JSONL, JSON, CSV or Parquet file, a Hugging Face dataset
saved on disk, or a dataset loader plugin (or taking its inline cases).

Errors are `ConfigError`s whose message starts with the `DatasetSpec` field to fix (`path: ...`,
`id_field: ...`), like the core's validators, so the config loader can prefix `datasets[i].`.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from themis.app.config.large_files import SAMPLE, large_file_lines, lines_about, streamed_lines
from themis.app.config.plain_jsonl import plain_jsonl_cases
from themis.app.config.tables import TABLE_FORMATS, json_row, plugin_rows, table_rows
from themis.core.errors import ConfigError
from themis.core.identity import digest
from themis.core.packed_cases import PackedCases
from themis.core.plugins import PluginRegistry
from themis.core.spec import Case, DatasetSpec
from themis.core.validation import unknown_name

__all__ = ["jsonl_rows", "load_cases", "resolve_path"]

# A row of a dataset file and where it is, for messages: ("line 3", {...}).
Row = tuple[str, dict[str, Any]]


def resolve_path(path: str, base_dir: Path) -> Path:
    """`path` as written in a config, made absolute against the config file's directory."""
    return (base_dir / Path(path).expanduser()).resolve()


def load_cases(
    dataset: DatasetSpec,
    base_dir: Path,
    plugins: PluginRegistry | None = None,
    pack_from: int | None = None,
) -> Sequence[Case]:
    """The dataset's cases in file order (inline cases in their order), sliced by `where`,
    `sample` and `limit`: a tuple, or a `PackedCases` block if the file or loader gave
    `pack_from` rows or more (ADR 0100: packed as they are read, never all held as `Case`s).

    Raises `ConfigError` when the file is missing, unreadable or malformed, or ids are missing or
    repeated. `plugins` holds the dataset's loader plugin, if it names one.
    """
    if dataset.loader is not None:
        if dataset.cases:
            raise ConfigError("loader: cannot be combined with inline cases; give one or the other")
        if dataset.package is not None:
            base_dir = package_dir(dataset.package)
        where = None if dataset.path is None else resolve_path(dataset.path, base_dir)
        loaded = plugin_rows(dataset, where, plugins)
        return _sliced(_rows_to_cases(loaded, dataset, where, pack_from), dataset)
    if dataset.path is None:
        if not dataset.cases:
            raise ConfigError("path: missing; give a dataset file or inline cases")
        return _sliced(dataset.cases, dataset)
    if dataset.cases:
        raise ConfigError("path: cannot be combined with inline cases; give one or the other")
    if dataset.package is not None:
        base_dir = package_dir(dataset.package)
    file = resolve_path(dataset.path, base_dir)
    gzipped = file.suffix.lower() == ".gz"
    suffix = (file.with_suffix("").suffix if gzipped else file.suffix).lower()
    kind = dataset.format or suffix.lstrip(".")
    if kind in TABLE_FORMATS:
        table = table_rows(kind, file, dataset.split)
        return _sliced(_rows_to_cases(table, dataset, file, pack_from), dataset)
    reader = _READERS.get(f".{kind}")
    if reader is None:
        raise ConfigError(
            f"path: unsupported dataset format {suffix or '(none)'!r} for {file}"
            " (use .jsonl, .json, .csv (optionally .gz) or .parquet, or set format)"
        )
    # A large JSONL file is read line by line, never whole (ADR 0104; `large_files`).
    streamed = pack_from is not None and kind == "jsonl" and not gzipped
    lines = large_file_lines(file, pack_from) if streamed and pack_from is not None else None
    text = None if lines is not None else _read(file, gzipped)
    if text is not None and pack_from is not None and kind != "json":
        lines = _lines_about(text)
    if (
        text is not None
        and kind == "jsonl"
        and (lines is None or pack_from is None or lines < pack_from)
    ):
        # Every line plainly one case: read in one loop (ADR 0118); else as below, from the start.
        plain = plain_jsonl_cases(text, dataset, _DECODER, pack_from)
        if plain is not None:
            return _sliced(plain, dataset)
    cases = _cases(
        lambda: reader(streamed_lines(file) if text is None else text, file),
        dataset,
        file,
        pack_from,
        lines,
    )
    if not cases:
        raise ConfigError(f"path: no cases in {file}")
    return _sliced(cases, dataset)


def _lines_about(text: str) -> int:
    """About how many lines `text` holds, from its first `_SAMPLE` characters' (a JSONL row is
    a line, a CSV row one or more): cheap at any size (counting a 100k-row file's ~5 MB is
    ~5-10 ms, CPU a run below the bar does not spend, ADR 0104), and only a guess whether to
    pack from the first row: a wrong one costs CPU or memory, never a different result."""
    return lines_about(text.count("\n", 0, SAMPLE), min(len(text), SAMPLE), len(text))


def _sliced(given: Sequence[Case], dataset: DatasetSpec) -> Sequence[Case]:
    """The slice `where`, `sample` and `limit` select, in that order, in file order (a block's
    slice is a block: its cases are read one at a time, never all held)."""
    cases: Sequence[Case] = given if isinstance(given, PackedCases) else tuple(given)
    for name, wanted in dataset.where.items():
        if not any(name in case.fields for case in cases):
            columns = {column for case in cases for column in case.fields}
            raise ConfigError(f"where: {unknown_name('field of any row', name, columns)}")
        allowed = wanted if isinstance(wanted, list) else [wanted]
        cases = _kept(cases, _field_in(name, allowed))
    if dataset.where and not cases:
        raise ConfigError(f"where: no row matches {dict(dataset.where)!r}")
    if dataset.sample is not None and dataset.sample < len(cases):
        seed = dataset.sample_seed
        # Ids are ranked, not cases: ids are unique, so the ids drawn are those of the cases.
        ranked = sorted((case.id for case in cases), key=lambda id: digest([seed, id]))
        drawn = set(ranked[: dataset.sample])
        cases = _kept(cases, lambda case: case.id in drawn)
    if dataset.limit is None:
        return cases
    if isinstance(cases, PackedCases):
        return PackedCases(islice(cases, dataset.limit))
    return cases[: dataset.limit]


def _field_in(name: str, allowed: list[Any]) -> Callable[[Case], bool]:
    """Whether a case's field `name` is one of `allowed`."""
    return lambda case: case.fields.get(name) in allowed


def _kept(cases: Sequence[Case], keep: Callable[[Case], bool]) -> Sequence[Case]:
    """The cases `keep` keeps, in order: a block of a block, else a tuple."""
    if isinstance(cases, PackedCases):
        return PackedCases(filter(keep, cases))
    return tuple(filter(keep, cases))


def _rows_to_cases(
    rows: Iterable[Mapping[str, Any]],
    dataset: DatasetSpec,
    where: Path | None,
    pack_from: int | None = None,
) -> Sequence[Case]:
    """Rows read by a table reader or a loader plugin, as cases (JSON values checked)."""
    label = str(where) if where is not None else f"loader {dataset.loader}"
    listed = list(rows)
    if not listed:
        raise ConfigError(f"path: no cases in {label}")

    def numbered() -> Iterator[Row]:
        for index, row in enumerate(listed):
            yield f"row {index}", json_row(row, index, label)

    return _cases(numbered, dataset, label, pack_from, len(listed))


def package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise ConfigError(f"package: {package!r} is not an installed Python package")
    return Path(next(iter(locations)))


def _read(file: Path, gzipped: bool = False) -> str:
    try:
        data = file.read_bytes()
        return (gzip.decompress(data) if gzipped else data).decode("utf-8-sig")
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ConfigError(f"path: {file}: not a gzip file ({error})") from None
    except FileNotFoundError:
        raise ConfigError(f"path: file not found: {file}") from None
    except IsADirectoryError:
        raise ConfigError(f"path: is a directory, not a file: {file}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"path: {file}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"path: cannot read {file}: {error.strerror}") from None


def _cases(
    rows: Callable[[], Iterable[Row]],
    dataset: DatasetSpec,
    file: Path | str,
    pack_from: int | None = None,
    rows_about: int | None = None,
) -> Sequence[Case]:
    """The cases of the rows `rows()` yields: a tuple, or, once `pack_from` rows are read, a
    `PackedCases` block into which every later case is packed as its row is read (ADR 0100: a
    1M-row load held every case as objects, ~0.42 KiB each, before they were packed: 608 MiB).
    Every check is made as the rows are read, in the same order, so a bad row gives the same
    message either way.

    When the rows are expected before any is read to be `rows_about`, and that is `pack_from`
    or more (a file's lines, a table's rows), every case is packed from the first (ADR 0104:
    the first `pack_from` were held as objects, ~85 MiB at the 1M load's peak), and a block of
    fewer than `pack_from` is given back as a tuple, as the rows would have been."""
    if pack_from is not None and rows_about is not None and rows_about >= pack_from:
        block = PackedCases(_made_cases(rows, dataset, file, 0))
        return block if len(block) >= pack_from else tuple(block)
    made = _made_cases(rows, dataset, file, pack_from)
    if pack_from is None:
        return tuple(made)
    head = list(islice(made, pack_from))
    if len(head) < pack_from:
        return tuple(head)
    return PackedCases(_drained(head, made))


def _drained(head: list[Case], rest: Iterator[Case]) -> Iterator[Case]:
    """`head`'s cases then `rest`'s, each of `head` let go of as it is yielded."""
    head.reverse()
    while head:
        yield head.pop()
    yield from rest


def _made_cases(
    rows: Callable[[], Iterable[Row]],
    dataset: DatasetSpec,
    file: Path | str,
    hashed_from: int | None = None,
) -> Iterator[Case]:
    """The case of each row `rows()` yields, each made as its row is read: a reader yields its
    rows one at a time, so a row's decoded dict, its keys and its place are dropped before the
    next is read (held all at once, they were ~0.6 KiB a case more at the load's peak: issue
    12). `rows` is called again only to word a duplicate id's first place.

    From row `hashed_from` on (the cases are packed, ADR 0100) the ids seen are held as their
    hashes (`_IdHashes`, ~16 bytes an id against ~90 for a set of the ids themselves)."""
    id_field = dataset.id_field
    # A file with no id column at all is numbered by row; a column missing from some rows is a
    # typo: the first row without it is named once a row with it is met (or at once, after one).
    missing_at: str | None = None
    with_ids = False
    seen: set[str] | _IdHashes = set()
    # One string per field name for every row: a decoder makes each row's keys anew (~50 bytes
    # a field a row, kept by the case for the whole run).
    names: dict[str, str] = {}
    for index, (where, row) in enumerate(rows()):
        if index == hashed_from and isinstance(seen, set):
            seen = _IdHashes(seen)
        if id_field in row:
            if missing_at is not None:
                break
            with_ids = True
            case_id = "" if row[id_field] is None else str(row[id_field])
            if not case_id.strip():
                raise ConfigError(f"id_field: empty {id_field!r} in {file} {where}")
            if case_id in seen:
                first = _first_place(rows, id_field, case_id)
                if first != where:  # (`_IdHashes` holds another id of the same hash, if equal)
                    raise ConfigError(
                        f"path: duplicate case id {case_id!r} in {file} ({first} and {where})"
                    )
            seen.add(case_id)
        else:
            if with_ids:
                missing_at = where
                break
            missing_at = missing_at or where
            case_id = str(index)
        raw_expected = row.get(dataset.expected_field)
        expected = None if raw_expected is None else str(raw_expected)
        fields = {names.setdefault(name, name): value for name, value in row.items()}
        yield Case.of_row(case_id, fields, expected)
    else:
        return
    raise ConfigError(f"id_field: {id_field!r} missing in {file} {missing_at}")


class _IdHashes:
    """A set of ids held as their hashes only, in one array (open addressing, linear probing):
    `id in ids` is true for an id added, and for another of the same hash (a duplicate's
    message reads the rows again to find the first, which tells them apart)."""

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._count = 0
        self._mask = 1023
        self._slots = array("q", bytes(8 * 1024))  # 0 is an empty slot
        for id in ids:
            self.add(id)

    def _at(self, hashed: int) -> int:
        """The slot holding `hashed`, or the empty slot where it goes."""
        slots, mask = self._slots, self._mask
        at = hashed & mask
        while (held := slots[at]) and held != hashed:
            at = (at + 1) & mask
        return at

    def __contains__(self, id: str) -> bool:
        return bool(self._slots[self._at(hash(id) or 1)])

    def add(self, id: str) -> None:
        hashed = hash(id) or 1
        at = self._at(hashed)
        if self._slots[at]:
            return
        self._slots[at] = hashed
        self._count += 1
        if 2 * self._count > self._mask:  # at most half full: short probes
            held = self._slots
            self._mask = 2 * self._mask + 1
            self._slots = array("q", bytes(8 * (self._mask + 1)))
            for hashed in held:
                if hashed:
                    self._slots[self._at(hashed)] = hashed


def _first_place(rows: Callable[[], Iterable[Row]], id_field: str, case_id: str) -> str:
    """Where the first row with id `case_id` is (read again: only a duplicate's message needs
    it)."""
    return next(
        where
        for where, row in rows()
        if row.get(id_field) is not None and str(row[id_field]) == case_id
    )


def _object(value: Any, where: str, file: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"path: {file} {where}: expected a JSON object, got {type(value).__name__}"
        )
    return value


class _NotJson(ValueError):
    """NaN and Infinity are not JSON and would break the canonical JSON that ids are hashed from."""


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not allowed")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_DECODE = _DECODER.decode
_RAW_DECODE = _DECODER.raw_decode


def _line_value(line: str) -> Any:
    """The JSON value of one line: the C scanner alone for a line that is exactly one value
    (`decode` wraps it in Python, ~1 us a line), else `decode`, which words every error."""
    try:
        value, end = _RAW_DECODE(line)
    except ValueError:
        end = -1
    return value if end == len(line) else _DECODE(line)


def jsonl_rows(text: str, file: Path) -> list[Row]:
    """The rows of a JSONL text, each with its place (`line N`)."""
    return list(_jsonl_rows(text, file))


def _jsonl_rows(text: str | Iterable[str], file: Path) -> Iterator[Row]:
    """`jsonl_rows` one row at a time, of a text or of its lines (`text.split("\\n")`)."""
    lines = _lines(text) if isinstance(text, str) else text
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():
            continue
        where = f"line {number}"
        try:
            # One decoder for every line (`json.loads` with an option builds one per call);
            # `json.loads` itself for a line that starts with a BOM, to say so.
            value = _line_value(line) if line[0] != "\ufeff" else json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"path: {file} {where}: invalid JSON: {error.msg} (column {error.colno})"
            ) from None
        except _NotJson as error:
            raise ConfigError(f"path: {file} {where}: invalid JSON: {error}") from None
        yield where, _object(value, where, file)


def _lines(text: str) -> Iterator[str]:
    """`text.split("\n")` one line at a time (a list of every line of a 1M-row file is ~120
    MB). Split on "\n" only: JSON strings may hold U+2028, which `str.splitlines` would cut."""
    find = text.find
    start = 0
    while (end := find("\n", start)) >= 0:
        yield text[start:end]
        start = end + 1
    yield text[start:]


def _json_rows(text: str, file: Path) -> Iterator[Row]:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"path: {file}: invalid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except _NotJson as error:
        raise ConfigError(f"path: {file}: invalid JSON: {error}") from None
    if not isinstance(value, list):
        raise ConfigError(
            f"path: {file}: expected a JSON array of objects, got {type(value).__name__}"
        )
    for index, item in enumerate(value):
        where = f"item {index}"
        value[index] = None  # its case holds what it needs: the row is dropped as it is read
        yield where, _object(item, where, file)


def _csv_rows(text: str, file: Path) -> Iterator[Row]:
    import csv  # (a CSV dataset's: not imported by a run of a spec)

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise ConfigError(f"path: {file} line 1: duplicate column {duplicates[0]!r}")
        for values in reader:
            if not values:
                continue
            where = f"line {reader.line_num}"
            if len(values) != len(header):
                raise ConfigError(
                    f"path: {file} {where}: expected {len(header)} values, got {len(values)}"
                )
            yield where, dict(zip(header, values, strict=True))
    except csv.Error as error:
        raise ConfigError(f"path: {file} line {reader.line_num}: invalid CSV: {error}") from None


# Each reads a file's whole text; the JSONL reader its lines too (a large file's, streamed).
_READERS: dict[str, Callable[[Any, Path], Iterator[Row]]] = {
    ".jsonl": _jsonl_rows,
    ".json": _json_rows,
    ".csv": _csv_rows,
}

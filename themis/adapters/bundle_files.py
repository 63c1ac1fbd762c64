"""Stage bundles on disk: a directory (`manifest.json` + `rows.jsonl`), one JSON-lines file
whose first line is the manifest, or one Parquet file (`themis.adapters.bundle_parquet`: the
manifest in its key-value metadata, a row per event).

The manifest carries the run's snapshot (so a store without the run can import it) and the
SHA-256 of the rows; each row is `{"kind": ..., "event": {...}}`, the event as the store's
codec encodes it. The hash is of those rows as JSON lines in every format, so a bundle's
manifest is the same whichever format it is written in. Reading checks the format, schema
version, hash, count and every row, and raises `BundleError` naming the path (and the line)
of the first problem. Writing never replaces an existing file or directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs

from themis.adapters.bundle_parquet import PARQUET_SUFFIX, read_parquet, write_parquet
from themis.adapters.codec import decode_event, decode_snapshot, encode_event, encode_snapshot
from themis.core.bundles import (
    BUNDLE_FORMAT,
    BUNDLE_SCHEMA_VERSION,
    BundleError,
    BundleKind,
    BundleManifest,
    StageBundle,
)
from themis.core.errors import StoreError
from themis.core.events import Event
from themis.core.snapshot import RunSnapshot

__all__ = ["read_bundle", "write_bundle"]

MANIFEST: Final = "manifest.json"
ROWS: Final = "rows.jsonl"
SINGLE_FILE_SUFFIXES: Final = (".jsonl", ".ndjson")


def _row(event: Event) -> str:
    return _line(event.kind, encode_event(event))


def _line(kind: str, event: str) -> str:
    """A row as a JSON line: what the manifest's hash covers, in every format."""
    return f'{{"kind":{json.dumps(kind)},"event":{event}}}\n'


def _manifest_document(manifest: BundleManifest, snapshot: RunSnapshot) -> dict[str, Any]:
    document = attrs.asdict(manifest)
    document["kind"] = str(manifest.kind)
    document["snapshot"] = json.loads(encode_snapshot(snapshot))
    return document


def write_bundle(path: Path, bundle: StageBundle) -> BundleManifest:
    """Write the bundle at `path` (a single file if it ends in `.jsonl` or `.parquet`, else a
    directory); the manifest written, with the rows' count and hash filled in."""
    if path.exists():
        raise BundleError(f"{path}: already exists; choose a new path")
    lines = [_row(event) for event in bundle.events]
    rows = "".join(lines)
    manifest = attrs.evolve(
        bundle.manifest,
        rows=len(bundle.events),
        rows_sha256=hashlib.sha256(rows.encode()).hexdigest(),
    )
    head = json.dumps(_manifest_document(manifest, bundle.snapshot), sort_keys=True)
    try:
        if path.suffix == PARQUET_SUFFIX:
            write_parquet(
                path, head, [(event.kind, encode_event(event)) for event in bundle.events]
            )
        elif path.suffix in SINGLE_FILE_SUFFIXES:
            path.write_text(json.dumps({"manifest": json.loads(head)}) + "\n" + rows)
        else:
            path.mkdir(parents=True)
            (path / MANIFEST).write_text(head + "\n")
            (path / ROWS).write_text(rows)
    except OSError as error:
        raise BundleError(f"{path}: cannot write: {error.strerror}") from None
    return manifest


def _read_parts(path: Path) -> tuple[Any, list[str]]:
    """The manifest document and the row lines (each ending in a newline)."""
    try:
        if path.suffix == PARQUET_SUFFIX and not path.is_dir():
            text, rows = read_parquet(path)
            head: Any = json.loads(text)
            lines = [_line(kind, event) for kind, event in rows]
        elif path.is_dir():
            head = json.loads((path / MANIFEST).read_text())
            lines = (path / ROWS).read_text().splitlines(keepends=True)
        else:
            first, *lines = path.read_text().splitlines(keepends=True) or [""]
            wrapper = json.loads(first)
            head = wrapper.get("manifest") if isinstance(wrapper, dict) else None
    except FileNotFoundError as error:
        raise BundleError(f"{path}: not a Themis bundle ({error.filename} is missing)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: cannot read: {error}") from None
    except json.JSONDecodeError as error:
        raise BundleError(f"{path}: manifest: invalid JSON ({error.msg})") from None
    return head, lines


def _manifest(path: Path, head: Any) -> tuple[BundleManifest, RunSnapshot]:
    if not isinstance(head, dict) or head.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not a Themis bundle (no {BUNDLE_FORMAT!r} manifest)")
    version = head.get("schema_version")
    if not isinstance(version, int) or version > BUNDLE_SCHEMA_VERSION:
        raise BundleError(
            f"{path}: bundle schema version {version!r} is newer than this Themis reads "
            f"({BUNDLE_SCHEMA_VERSION}); upgrade Themis"
        )
    try:
        snapshot = decode_snapshot(json.dumps(head.pop("snapshot")))
        manifest = BundleManifest(**{**head, "kind": BundleKind(head["kind"])})
    except (KeyError, TypeError, ValueError, StoreError) as error:
        raise BundleError(f"{path}: manifest: {str(error).splitlines()[0]}") from None
    if snapshot.run_id != manifest.run_id:
        raise BundleError(f"{path}: manifest: its snapshot is of another run")
    return manifest, snapshot


def _events(path: Path, lines: Iterable[str], first_line: int) -> tuple[Event, ...]:
    events: list[Event] = []
    for number, line in enumerate(lines, start=first_line):
        try:
            row = json.loads(line)
            events.append(decode_event(row["kind"], json.dumps(row["event"])))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise BundleError(f"{path}: line {number}: not a bundle row ({error})") from None
        except StoreError as error:
            raise BundleError(f"{path}: line {number}: {error}") from None
    return tuple(events)


def read_bundle(path: Path) -> StageBundle:
    """The bundle at `path`, its manifest, hash and every row checked (module docstring)."""
    head, lines = _read_parts(path)
    manifest, snapshot = _manifest(path, head)
    digest = hashlib.sha256("".join(lines).encode()).hexdigest()
    if digest != manifest.rows_sha256 or len(lines) != manifest.rows:
        raise BundleError(
            f"{path}: its rows do not match the manifest's count and SHA-256 "
            "(edited or truncated); export it again"
        )
    events = _events(
        path, lines, first_line=1 if path.is_dir() or path.suffix == PARQUET_SUFFIX else 2
    )
    return StageBundle(manifest=manifest, snapshot=snapshot, events=events)

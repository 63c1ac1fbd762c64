"""A run a replay derived from another (`derived_from`) is stored with its source's cases as the
source's stored text holds them, not encoded again (ADR 0112): its text, outline and their sha256
are exactly what encoding it gives; any doubt (another count of datasets, cases whose text is
not the source's, a source without a kept outline) encodes it as any run's."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import attrs
import duckdb
import pytest

from tests.contract.test_store_contract import make_snapshot
from themis.adapters import codec
from themis.adapters.codec import encode_snapshot
from themis.adapters.stores import DuckDBStore
from themis.core import case_pieces
from themis.core.snapshot import RunSnapshot
from themis.core.spec import Case, MetricSpec

CASES = tuple(
    Case(id=f"c{i}", fields={"question": f"{i}+1?", "n": i, "tags": ["a", i]}, expected=str(i))
    for i in range(40)
)


def _pair(
    cases: Sequence[Case] = CASES, derived_cases: Sequence[Case] | None = None
) -> tuple[RunSnapshot, RunSnapshot]:
    base = make_snapshot("run-source")
    dataset = attrs.evolve(base.spec.datasets[0], cases=cases)
    source = attrs.evolve(base, spec=attrs.evolve(base.spec, datasets=[dataset]))
    derived_dataset = attrs.evolve(dataset, cases=cases if derived_cases is None else derived_cases)
    derived = attrs.evolve(
        source,
        run_id="run-derived",
        created_at=1_700_000_123.5,
        spec=attrs.evolve(
            source.spec, datasets=[derived_dataset], metrics=[MetricSpec(name="contains")]
        ),
        provenance={**source.provenance, "derived_from": "run-source", "replayed_stage": "score"},
    )
    return source, derived


def _stored(path: Path, run_id: str) -> tuple[str, tuple[str, list[str], str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        text = con.execute("SELECT snapshot FROM runs WHERE run_id = $1", [run_id]).fetchone()
        outline = con.execute(
            "SELECT outline, fields, stored_as FROM run_outlines WHERE run_id = $1", [run_id]
        ).fetchone()
    assert text is not None
    assert outline is not None
    return text[0], outline


def _encoded_cases(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many cases each encoding of a batch of cases encodes, from now on."""
    counts: list[int] = []
    encode = codec._encode_cases

    def counted(cases: Sequence[Case]) -> str:
        counts.append(len(cases))
        return encode(cases)

    monkeypatch.setattr(codec, "_encode_cases", counted)
    return counts


def _saved(path: Path, *snapshots: RunSnapshot) -> None:
    store = DuckDBStore(path)
    try:
        for snapshot in snapshots:
            store.save_snapshot(snapshot, places=False)
    finally:
        store.close()


def test_a_derived_run_is_stored_with_its_source_s_cases_not_encoded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(case_pieces, "BATCH", 8)
    source, derived = _pair()
    path = tmp_path / "s.duckdb"
    _saved(path, source)
    counts = _encoded_cases(monkeypatch)
    _saved(path, derived)
    # Its first batch only (checked against the source's text) beside one-case stand-ins:
    # encoded whole, the derived run's 40 cases were encoded again (fails on the code before).
    assert sum(count for count in counts if count > 1) == 8
    text, (outline, fields, stored_as) = _stored(path, "run-derived")
    reference = tmp_path / "alone.duckdb"
    _saved(reference, derived)  # no source there: encoded as any run's
    assert (text, (outline, fields, stored_as)) == _stored(reference, "run-derived")
    assert text == encode_snapshot(derived)
    assert stored_as == hashlib.sha256(text.encode()).hexdigest()
    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.load_snapshot("run-derived") == derived
    finally:
        reader.close()


@pytest.mark.parametrize("where", ["in its first batch", "in the source's text"])
def test_cases_that_are_not_the_source_s_are_encoded_as_any_run_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setattr(case_pieces, "BATCH", 8)
    edited = list(CASES)
    at = 3 if where == "in its first batch" else 30
    edited[at] = attrs.evolve(edited[at], expected="else")
    source, derived = _pair(derived_cases=edited)
    path = tmp_path / "s.duckdb"
    _saved(path, source)
    if where == "in the source's text":  # no longer its outline's around its cases
        with duckdb.connect(str(path)) as con:
            con.execute(
                "UPDATE runs SET snapshot = replace(snapshot, '\"seed\":1234', '\"seed\":5')"
            )
    _saved(path, derived)
    text, (_, _, stored_as) = _stored(path, "run-derived")
    assert text == encode_snapshot(derived)
    assert stored_as == hashlib.sha256(text.encode()).hexdigest()


def test_a_source_without_a_kept_outline_or_of_two_datasets_is_not_spliced(
    tmp_path: Path,
) -> None:
    source, derived = _pair()
    path = tmp_path / "s.duckdb"
    _saved(path, source)
    with duckdb.connect(str(path)) as con:
        con.execute("DELETE FROM run_outlines")
    _saved(path, derived)
    assert _stored(path, "run-derived")[0] == encode_snapshot(derived)
    two = make_snapshot("run-source")  # `make_spec`'s two datasets
    derived_two = attrs.evolve(
        two, run_id="run-two", provenance={**two.provenance, "derived_from": "run-source"}
    )
    other = tmp_path / "two.duckdb"
    _saved(other, two, derived_two)
    assert _stored(other, "run-two")[0] == encode_snapshot(derived_two)

"""Datasets from Parquet files (read through DuckDB): cases as JSON values, the same cases as the
JSONL they were written from, one-line errors, and an edited file is a new run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from themis.app.config.datasets import load_cases
from themis.app.config.loading import config_from_mapping
from themis.core.errors import ConfigError
from themis.core.identity import dataset_fingerprint
from themis.core.planner import compile_run
from themis.core.spec import DatasetSpec

ROWS = [
    {"id": "a", "question": "2 + 2?", "answer": "4", "choices": ["3", "4"]},
    {"id": "b", "question": "3 + 3?", "answer": "6", "choices": ["6", "7"]},
]


def _parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    source = path.with_suffix(".jsonl")
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with duckdb.connect(":memory:") as connection:
        connection.execute(
            f"COPY (SELECT * FROM read_json_auto('{source}')) TO '{path}' (FORMAT parquet)"
        )
    return path


def _config(path: Path, **dataset: Any) -> dict[str, Any]:
    return {
        "seed": 1,
        "samples": 1,
        "datasets": [{"name": "d", "path": str(path), **dataset}],
        "models": [{"name": "m", "model": "fake"}],
        "prompts": [{"name": "p", "template": "{{ question }}"}],
    }


def test_a_parquet_file_reads_as_the_jsonl_it_was_written_from(tmp_path: Path) -> None:
    parquet = _parquet(tmp_path / "cases.parquet", ROWS)
    from_parquet = load_cases(DatasetSpec(name="d", path=str(parquet)), tmp_path)
    from_jsonl = load_cases(DatasetSpec(name="d", path="cases.jsonl"), tmp_path)
    assert from_parquet == from_jsonl
    assert [case.expected for case in from_parquet] == ["4", "6"]
    assert from_parquet[0].fields["choices"] == ["3", "4"]


def test_dates_and_decimals_become_json_values(tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    with duckdb.connect(":memory:") as connection:
        connection.execute(
            "COPY (SELECT 'x' AS id, DATE '2026-12-03' AS day, 1.25::DECIMAL(5, 2) AS price, "
            f"'1' AS answer) TO '{path}' (FORMAT parquet)"
        )
    (case,) = load_cases(DatasetSpec(name="d", path=str(path)), tmp_path)
    assert case.fields == {"id": "x", "day": "2026-12-03", "price": 1.25, "answer": "1"}


def test_an_edited_parquet_file_is_a_new_run(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "cases.parquet", ROWS)
    before = config_from_mapping(_config(path), base_dir=tmp_path, source_name="x.toml")
    _parquet(path, [ROWS[0], {**ROWS[1], "answer": "7"}])
    after = config_from_mapping(_config(path), base_dir=tmp_path, source_name="x.toml")
    assert compile_run(before.spec).run_id != compile_run(after.spec).run_id
    cases = [dataset.cases for dataset in (before.spec.datasets[0], after.spec.datasets[0])]
    assert dataset_fingerprint(cases[0]) != dataset_fingerprint(cases[1])
    # The same content read from another format is the same fingerprint: content, not source.
    jsonl = load_cases(DatasetSpec(name="d", path="cases.jsonl"), tmp_path)
    assert dataset_fingerprint(jsonl) == dataset_fingerprint(cases[1])


@pytest.mark.parametrize(
    ("write", "dataset", "message"),
    [
        (b"not parquet", {}, "datasets[0].path: {path}: not a readable Parquet file"),
        (None, {}, "datasets[0].path: file not found: {path}"),
        (b"", {"split": "test"}, "datasets[0].split: a Parquet file has no splits"),
    ],
)
def test_parquet_errors_are_one_line(
    tmp_path: Path, write: bytes | None, dataset: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.parquet"
    if write is not None:
        path.write_bytes(write)
    with pytest.raises(ConfigError) as raised:
        config_from_mapping(_config(path, **dataset), base_dir=tmp_path, source_name="x.toml")
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith("x.toml: " + message.format(path=path))


def test_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "cases.parquet", ROWS)
    renamed = path.rename(tmp_path / "cases.data")
    cases = load_cases(DatasetSpec(name="d", path=str(renamed), format="parquet"), tmp_path)
    assert [case.id for case in cases] == ["a", "b"]


def test_a_saved_hugging_face_dataset_reads_from_disk(tmp_path: Path) -> None:
    import datasets  # the `hf` extra (in the test extra); a heavy import, so only here

    table = {key: [row[key] for row in ROWS] for key in ROWS[0]}
    datasets.Dataset.from_dict(table).save_to_disk(str(tmp_path / "one"))
    splits = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(table), "test": datasets.Dataset.from_dict(table)}
    )
    splits.save_to_disk(str(tmp_path / "splits"))
    jsonl = load_cases(
        DatasetSpec(name="d", path=str(_parquet(tmp_path / "c.parquet", ROWS))), tmp_path
    )
    one = load_cases(DatasetSpec(name="d", path="one", format="huggingface"), tmp_path)
    test = load_cases(
        DatasetSpec(name="d", path="splits", format="huggingface", split="test"), tmp_path
    )
    assert one == test == jsonl
    with pytest.raises(
        ConfigError, match=r"split: 'dev' is not a split of .* \(splits: test, train\)"
    ):
        load_cases(
            DatasetSpec(name="d", path="splits", format="huggingface", split="dev"), tmp_path
        )
    with pytest.raises(ConfigError, match="not a saved Hugging Face dataset"):
        load_cases(DatasetSpec(name="d", path=".", format="huggingface"), tmp_path)


def test_the_cases_of_a_file_share_one_string_per_field_name(tmp_path: Path) -> None:
    rows = [{"id": str(i), "question": f"q{i}", "answer": str(i)} for i in range(3)]
    (tmp_path / "many.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    cases = load_cases(DatasetSpec(name="d", path="many.jsonl"), tmp_path)
    assert [dict(case.fields) for case in cases] == rows
    first, *others = (list(case.fields) for case in cases)
    for names in others:  # the same objects, not equal copies (~50 bytes a field a case)
        assert all(name is held for name, held in zip(names, first, strict=True))

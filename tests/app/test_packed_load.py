"""A large run's cases are packed as its dataset is read (ADR 0100): never all held as `Case`s,
checked as they are read, sliced as a block, and equal to the cases a small run loads. The bar
(`themis.core.large_run.LARGE_RUN_TRIALS`) is lowered here so that a few rows make a run large."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from themis.app.config import datasets
from themis.app.config.loading import load_config
from themis.core import large_run
from themis.core.errors import ConfigError
from themis.core.packed_cases import PackedCases
from themis.core.spec import Case, DatasetSpec

ROWS = 40
BAR = 10  # trials from which a run is large here

CONFIG = """\
name = "packed-load"
seed = 1
samples = 1

{datasets}

[[models]]
name = "m"
provider = "fake"
model = "fake-m"

[[prompts]]
name = "p"
template = "{{{{ question }}}}"

[[metrics]]
name = "exact_match"
"""


def write_rows(folder: Path, name: str, count: int, start: int = 0) -> None:
    rows = (
        {"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1), "kind": i % 3}
        for i in range(start, start + count)
    )
    (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


def config(folder: Path, *datasets: str) -> Path:
    path = folder / "config.toml"
    path.write_text(CONFIG.format(datasets="\n".join(datasets)))
    return path


def dataset(name: str, file: str, extra: str = "") -> str:
    return f'[[datasets]]\nname = "{name}"\npath = "{file}"\n{extra}'


def cases_of(path: Path) -> list[Any]:
    return [d.cases for d in load_config(path).spec.datasets]


@pytest.fixture
def lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", BAR)


def test_large_run_packs_as_it_reads_never_holding_every_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_rows(tmp_path, "rows.jsonl", ROWS)
    path = config(tmp_path, dataset("d", "rows.jsonl"))
    (small,) = cases_of(path)
    # at the last row: how many cases are held as objects then
    large, held = large_cases_counting(path, "jsonl", ROWS, monkeypatch)

    assert isinstance(small, tuple)
    assert isinstance(large, PackedCases)
    assert large == small
    assert held <= 1  # held all before they were packed: ROWS - 1


def large_cases_counting(
    path: Path, suffix: str, at_row: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, int]:
    """The cases of `path`'s large run, and how many more `Case` objects are held when its
    `at_row`th row is read than before its load."""
    reader = datasets._READERS[f".{suffix}"]
    alive: list[int] = []

    def cases_held() -> int:
        gc.collect()
        return sum(isinstance(held, Case) for held in gc.get_objects())

    def counting(text: str, file: Path) -> Iterator[datasets.Row]:
        for number, row in enumerate(reader(text, file), start=1):
            if number == at_row:
                alive.append(cases_held())
            yield row

    monkeypatch.setitem(datasets._READERS, f".{suffix}", counting)
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", BAR)
    before = cases_held()
    (large,) = cases_of(path)
    return large, alive[0] - before


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_a_file_with_the_bar_s_lines_is_packed_from_its_first_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    # ADR 0104: its lines are its rows, so it is known large before any row is read; the
    # first `BAR` cases were held as objects until packing began.
    write_rows(tmp_path, "rows.jsonl", ROWS)
    if suffix == "csv":
        rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
        (tmp_path / "rows.csv").write_text(
            "id,question,answer\n"
            + "".join(f"{row['id']},{row['question']},{row['answer']}\n" for row in rows)
        )
    path = config(tmp_path, dataset("d", f"rows.{suffix}"))
    (small,) = cases_of(path)
    large, held = large_cases_counting(path, suffix, BAR - 1, monkeypatch)

    assert isinstance(large, PackedCases)
    assert large == small
    assert held <= 1  # held until the bar's row: BAR - 2


def test_a_file_of_blank_lines_and_fewer_rows_than_the_bar_gives_a_tuple(
    tmp_path: Path, lowered: None
) -> None:
    write_rows(tmp_path, "rows.jsonl", BAR - 1)
    text = (tmp_path / "rows.jsonl").read_text()
    (tmp_path / "rows.jsonl").write_text(text.replace("\n", "\n\n"))  # 2 (BAR - 1) lines

    loaded = datasets.load_cases(DatasetSpec(name="d", path="rows.jsonl"), tmp_path, None, BAR)

    assert isinstance(loaded, tuple)
    assert [case.id for case in loaded] == [f"q{i}" for i in range(BAR - 1)]


def test_a_long_file_s_lines_are_guessed_from_its_start() -> None:
    text = "".join(f'{{"id": "{i:06}"}}\n' for i in range(100_000))  # 17 characters a line

    assert abs(datasets._lines_about(text) - 100_001) < 10
    assert datasets._lines_about(text[:170]) == 11  # counted: 10 lines and the last


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        ("limit = 20", PackedCases),  # 20 trials: still large
        ("limit = 5", tuple),  # read as a block, then a small run: a tuple again
        ("where = { kind = [0, 2] }", PackedCases),
        ("sample = 12\nsample_seed = 3", PackedCases),
        ("where = { kind = 1 }\nsample = 9\nlimit = 8", tuple),
    ],
)
def test_a_block_is_sliced_as_the_tuple_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, kind: type
) -> None:
    write_rows(tmp_path, "rows.jsonl", ROWS)
    path = config(tmp_path, dataset("d", "rows.jsonl", extra))
    (small,) = cases_of(path)
    monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", BAR)
    (large,) = cases_of(path)

    assert isinstance(large, kind)
    assert tuple(large) == tuple(small)


def test_a_later_dataset_counts_the_earlier_ones(tmp_path: Path, lowered: None) -> None:
    write_rows(tmp_path, "one.jsonl", 6)
    write_rows(tmp_path, "two.jsonl", 6, start=6)
    path = config(tmp_path, dataset("one", "one.jsonl"), dataset("two", "two.jsonl"))

    one, two = cases_of(path)  # 12 trials: large; the second read as a block from its 4th row

    assert isinstance(one, PackedCases)
    assert isinstance(two, PackedCases)
    assert [case.id for case in two] == [f"q{i}" for i in range(6, 12)]


def test_a_bad_row_of_a_large_run_gives_the_small_runs_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_rows(tmp_path, "rows.jsonl", ROWS)
    lines = (tmp_path / "rows.jsonl").read_text().splitlines(keepends=True)
    messages: list[str] = []
    for bad in ('{"id": "q3", "question": "again"}\n', '{"id": "q99", "x": NaN}\n', "[1]\n"):
        (tmp_path / "rows.jsonl").write_text("".join([*lines[:30], bad, *lines[30:]]))
        path = config(tmp_path, dataset("d", "rows.jsonl"))
        for trials in (large_run.LARGE_RUN_TRIALS, BAR):
            monkeypatch.setattr(large_run, "LARGE_RUN_TRIALS", trials)
            with pytest.raises(ConfigError) as raised:
                load_config(path)
            messages.append(str(raised.value))

    assert messages[0] == messages[1]
    assert messages[0].endswith("(line 4 and line 31)")
    assert messages[2] == messages[3]
    assert messages[2].endswith("line 31: invalid JSON: NaN is not allowed")
    assert messages[4] == messages[5]
    assert messages[4].endswith("line 31: expected a JSON object, got list")


def test_id_hashes_hold_every_id_added(tmp_path: Path) -> None:
    ids = datasets._IdHashes(["a", "b"])
    for number in range(5_000):  # grown many times
        ids.add(f"id{number}")

    assert all(f"id{number}" in ids for number in range(5_000))
    assert "a" in ids
    assert sum(f"other{number}" in ids for number in range(5_000)) == 0
    assert 2**61 in datasets._IdHashes([1])  # `hash` equal: held (the loader reads again)


def test_an_id_whose_hash_is_held_is_not_a_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lowered: None
) -> None:
    write_rows(tmp_path, "rows.jsonl", ROWS)
    path = config(tmp_path, dataset("d", "rows.jsonl"))
    (expected,) = cases_of(path)
    monkeypatch.setattr(datasets._IdHashes, "__contains__", lambda self, id: True)

    (cases,) = cases_of(path)  # every id "maybe seen": each read again, none a duplicate

    assert cases == expected

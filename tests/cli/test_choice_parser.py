"""The `choice` parser from the CLI: it must know each item's number of choices before any call."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Invoke, one_error_line
from tests.cli.test_cli import RunJson

CONFIG = """
name = "mc"
seed = 1
samples = 2

[[datasets]]
name = "quiz"
path = "quiz.jsonl"

[[models]]
name = "m"
provider = "fake"
model = "fake-1"

[[prompts]]
name = "p"
template = "{{{{ question }}}}"

[parser]
name = "choice"
{parser}

[[metrics]]
name = "exact_match"
"""


def _write(tmp_path: Path, rows: list[dict[str, object]], parser: str = "") -> Path:
    (tmp_path / "quiz.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "mc.toml"
    config.write_text(CONFIG.format(parser=parser))
    return config


def _rows(answers: str, with_choices: bool = True) -> list[dict[str, object]]:
    return [
        {
            "id": f"q{index}",
            "question": f"Question {index}?",
            "answer": answer,
            **({"choices": ["w", "x", "y", "z"]} if with_choices else {}),
        }
        for index, answer in enumerate(answers)
    ]


def test_each_case_gives_its_number_of_choices(tmp_path: Path, run_json: RunJson) -> None:
    # The scripted model answers "The answer is A." etc.: A and I read like any other letter.
    data = run_json(_write(tmp_path, _rows("ABCD")))
    (row,) = data["results"]
    assert (row["mean"], row["n"], row["unparsed"]) == (1.0, 8, 0)


def test_a_configured_count_serves_every_case(tmp_path: Path, run_json: RunJson) -> None:
    data = run_json(_write(tmp_path, _rows("AIJ", with_choices=False), "choices = 10"))
    (row,) = data["results"]
    assert (row["mean"], row["n"], row["unparsed"]) == (1.0, 6, 0)


def test_a_letter_beyond_the_choices_is_unparsed(tmp_path: Path, run_json: RunJson) -> None:
    data = run_json(_write(tmp_path, _rows("AE")))  # "E" on a 4-choice item
    (row,) = data["results"]
    assert (row["mean"], row["unparsed"]) == (0.5, 2)


def test_a_case_without_its_choices_is_refused_before_any_store(
    tmp_path: Path, invoke: Invoke
) -> None:
    config = _write(tmp_path, _rows("AB", with_choices=False))
    store = tmp_path / "s.duckdb"
    line = one_error_line(invoke("run", config, "--store", store))
    assert "parser.choices_field" in line
    assert "case 'q0' of dataset 'quiz' has no field 'choices'" in line
    assert not store.exists()


def test_a_bad_choice_count_is_refused(tmp_path: Path, invoke: Invoke) -> None:
    config = _write(tmp_path, _rows("AB"), "choices = 40")
    line = one_error_line(invoke("run", config, "--store", tmp_path / "s.duckdb"))
    assert "parser.choices" in line
    assert "from 2 to 26" in line

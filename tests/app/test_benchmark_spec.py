"""`themis.BenchmarkSpec`: slices, prompt variants with stable ids and few-shot examples from a
named split, accepted by every Orchestrator method that takes an experiment; the shipped
benchmark configs load into it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import themis
from tests.app.test_orchestrator import CountingModel
from themis import (
    BenchmarkSpec,
    Case,
    DatasetSpec,
    FewShotSplit,
    ModelSpec,
    Orchestrator,
    ProjectSpec,
    PromptVariant,
    SliceSpec,
    StorageSpec,
)
from themis.app.config.loading import read_table
from themis.app.config.structuring import structure

BENCHMARKS = Path(__file__).resolve().parents[2] / "examples" / "benchmarks"


def cases(count: int, prefix: str = "c") -> list[Case]:
    """Sums `a + a`, in two topics."""
    return [
        Case(
            id=f"{prefix}{i}",
            fields={"a": i, "topic": "even" if i % 2 == 0 else "odd"},
            expected=str(2 * i),
        )
        for i in range(count)
    ]


def benchmark(**changes: Any) -> BenchmarkSpec:
    table: dict[str, Any] = {
        "name": "sums",
        "seed": 3,
        "dataset": DatasetSpec(name="sums", cases=cases(10)),
        "slices": [
            SliceSpec(name="all"),
            SliceSpec(name="even", where={"topic": "even"}),
            SliceSpec(name="sample-4", sample=4, sample_seed=2),
            SliceSpec(name="first-3", limit=3),
        ],
        "splits": [DatasetSpec(name="train", cases=cases(5, prefix="t"))],
        "models": [ModelSpec(name="m", model="fake-model")],
        "prompt_variants": [
            PromptVariant(id="plain", template="{{ a }} + {{ a }} = {{ a * 2 }}"),
            PromptVariant(
                id="2-shot",
                template="{% for ex in examples %}{{ ex.id }} {% endfor %}= {{ a * 2 }}",
                few_shot=FewShotSplit(split="train", k=2, seed=5),
            ),
        ],
        "parser": themis.ParserSpec(name="number"),
    }
    table.update(changes)
    return BenchmarkSpec(**table)


@pytest.fixture
def orchestrator(tmp_path: Path) -> Orchestrator:
    project = ProjectSpec(storage=StorageSpec(path=str(tmp_path / "b.duckdb")))
    with Orchestrator(project, models={"fake": CountingModel()}) as orchestrator:
        yield orchestrator


def test_run_benchmark_reports_each_slice_and_prompt_variant(orchestrator: Orchestrator) -> None:
    result = orchestrator.run_benchmark(benchmark())
    assert result.status == "completed"
    rows = {(row.dataset, row.prompt): row.n for row in result.report.rows}
    assert rows == {
        (name, variant): n
        for name, n in (("all", 10), ("even", 5), ("sample-4", 4), ("first-3", 3))
        for variant in ("plain", "2-shot")
    }
    spec = orchestrator.experiment(benchmark()).spec
    assert [case.id for case in spec.datasets[3].cases] == ["c0", "c1", "c2"]
    assert {case.fields["topic"] for case in spec.datasets[1].cases} == {"even"}
    drawn = [case.id for case in spec.datasets[2].cases]
    assert drawn == [
        case.id for case in orchestrator.experiment(benchmark()).spec.datasets[2].cases
    ]
    other = benchmark(slices=[SliceSpec(name="sample-4", sample=4, sample_seed=3)])
    assert drawn != [case.id for case in orchestrator.experiment(other).spec.datasets[0].cases]


def test_few_shot_examples_come_from_the_named_split_with_its_seed(
    orchestrator: Orchestrator,
) -> None:
    def shown(spec: BenchmarkSpec) -> list[str]:
        trials = orchestrator.experiment(spec).plan()
        return [t.request.messages[0].content for t in trials if t.prompt == "2-shot"]

    first = shown(benchmark())
    assert all(text.count("t") == 2 for text in first)  # two examples of the train split
    assert first == shown(benchmark())  # seeded
    reseeded = benchmark(
        prompt_variants=[
            PromptVariant(
                id="2-shot",
                template="{% for ex in examples %}{{ ex.id }} {% endfor %}= {{ a * 2 }}",
                few_shot=FewShotSplit(split="train", k=2, seed=6),
            )
        ]
    )
    assert shown(reseeded) != first


def test_every_method_taking_an_experiment_takes_a_benchmark(orchestrator: Orchestrator) -> None:
    spec = benchmark(slices=[SliceSpec(name="first-3", limit=3)])
    run_id = orchestrator.experiment(spec).run_id
    assert orchestrator.plan(spec).manifest.run_id == run_id
    assert orchestrator.estimate(spec).trials == 6
    assert orchestrator.diff_specs(spec, spec).same_run
    assert orchestrator.generate(spec).model_calls == 6
    assert orchestrator.transform(spec).model_calls == 0
    assert orchestrator.evaluate(spec).report.scored == 6
    handle = orchestrator.submit(benchmark(slices=[SliceSpec(name="first-2", limit=2)]))
    assert handle.wait(timeout=60).status == "completed"
    assert orchestrator.run(spec).reused


def test_experiment_from_spec_takes_a_benchmark() -> None:
    experiment = themis.Experiment.from_spec(benchmark())
    assert [d.name for d in experiment.spec.datasets] == ["all", "even", "sample-4", "first-3"]
    with Orchestrator(ProjectSpec(storage=StorageSpec(path="memory"))) as orchestrator:
        assert orchestrator.experiment(benchmark()).run_id == experiment.run_id
    result = experiment.run(store="memory", models={"fake": CountingModel()})
    assert result.report.scored == 2 * (10 + 5 + 4 + 3)


def test_a_benchmark_is_the_run_of_the_experiment_it_compiles_to() -> None:
    spec = benchmark(slices=[SliceSpec(name="first-3", limit=3)])
    inline = spec.experiment()
    limited = DatasetSpec(name="first-3", cases=cases(10)[:3])
    as_experiment = themis.ExperimentSpec(
        seed=inline.seed,
        samples=1,
        datasets=[limited],
        models=inline.models,
        prompts=inline.prompts,
        parser=inline.parser,
        name="sums",
    )
    with Orchestrator(ProjectSpec(storage=StorageSpec(path="memory"))) as orchestrator:
        assert orchestrator.experiment(spec).run_id == orchestrator.experiment(as_experiment).run_id


@pytest.mark.parametrize("name", ["gsm8k", "hellaswag", "truthfulqa-mc1"])
def test_the_shipped_benchmark_configs_load_into_a_benchmark_spec(name: str) -> None:
    path = BENCHMARKS / f"{name}.toml"
    spec = structure(read_table(path, str(path)), BenchmarkSpec, source=str(path))
    assert spec.name == name
    from_file = themis.Experiment.from_file(path)
    assert [d.name for d in from_file.spec.datasets] == list(spec.slice_names)
    assert [p.name for p in from_file.spec.prompts] == list(spec.prompt_variant_ids)


def test_run_benchmark_takes_a_shipped_config_path(tmp_path: Path) -> None:
    with Orchestrator(ProjectSpec(storage=StorageSpec(path="memory"))) as orchestrator:
        result = orchestrator.run_benchmark(BENCHMARKS / "hellaswag.toml")
    assert [(row.dataset, row.n) for row in result.report.rows] == [
        ("hellaswag", 100),
        ("hellaswag-personal-care", 26),
        ("hellaswag-sample-20", 20),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "prompt_variants": [
                    PromptVariant(id="p", template="x", few_shot=FewShotSplit(split="tran", k=1))
                ]
            },
            "prompt_variants[0].few_shot.split: no split is named 'tran' (did you mean 'train'?)",
        ),
        ({"slices": [SliceSpec(name="a"), SliceSpec(name="a")]}, "slices: name 'a' is used twice"),
    ],
)
def test_a_bad_benchmark_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"\w") as raised:
        benchmark(**change)
    assert str(raised.value) == message


def test_a_bad_benchmark_config_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text(
        'name = "b"\nseed = 1\n[dataset]\nname = "d"\ncases = [{ id = "1", expected = "2" }]\n'
        '[[slices]]\nname = "s"\nwhere = { topic = "x" }\n'
        '[[models]]\nname = "m"\nmodel = "fake"\n'
        '[[prompt_variants]]\nid = "p"\ntemplate = "{{ id }}"\n'
    )
    with pytest.raises(themis.ConfigError) as raised:
        themis.Experiment.from_file(path)
    assert str(raised.value).startswith(f"{path}: datasets[0].where: no field of any row")
    path.write_text('name = "b"\nseed = 1\n[dataset]\nname = "d"\n[[datasets]]\nname = "e"\n')
    with pytest.raises(themis.ConfigError, match=r"not \[\[datasets\]\] or \[\[prompts\]\]"):
        themis.Experiment.from_file(path)

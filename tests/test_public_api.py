"""The public API: `themis.__all__` pinned, and Themis embedded in research code as a library.

Changing what `import themis` exports must change `PUBLIC_API` below, deliberately.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import themis
from themis import (
    Case,
    ConfigError,
    DatasetSpec,
    Experiment,
    ExperimentSpec,
    GenerationParams,
    MetricSpec,
    ModelSpec,
    ParserSpec,
    PromptSpec,
    RunNotFound,
    ThemisError,
)

PUBLIC_API = [
    "AgreementRow",
    "BenchmarkSpec",
    "BreakerChanged",
    "BundleError",
    "BundleKind",
    "BundleManifest",
    "Candidate",
    "Case",
    "CaseNotFound",
    "ClockPort",
    "Comparison",
    "ConfigComparison",
    "ConfigError",
    "DatasetSpec",
    "DuckDBStore",
    "Endpoint",
    "Estimate",
    "ExecutionFinished",
    "ExecutionStarted",
    "Experiment",
    "ExperimentSpec",
    "FailureKind",
    "FakeClock",
    "FewShotSplit",
    "GenerationParams",
    "JsonLinesTelemetry",
    "JudgeSpec",
    "LiveViewer",
    "LogTable",
    "MemoryStore",
    "Message",
    "MetricSpec",
    "ModelCallError",
    "ModelEstimate",
    "ModelPort",
    "ModelRequest",
    "ModelResponse",
    "ModelSpec",
    "OpenTelemetrySpans",
    "Orchestrator",
    "PairedComparison",
    "ParserSpec",
    "Paused",
    "Plugin",
    "PluginKind",
    "PluginRegistry",
    "Price",
    "Progress",
    "ProjectSpec",
    "PromptSpec",
    "PromptVariant",
    "ProviderHold",
    "RateLimit",
    "Report",
    "ReportRow",
    "Reporter",
    "Resampling",
    "Retried",
    "RunExists",
    "RunHandle",
    "RunManifest",
    "RunNotFound",
    "RunResult",
    "RuntimeConfig",
    "ScriptedModel",
    "SliceSpec",
    "Stage",
    "StorageSpec",
    "StoreError",
    "StoreLocked",
    "SystemClock",
    "TelemetryBus",
    "TelemetrySpec",
    "ThemisError",
    "TokenLogprob",
    "TrialDone",
    "TrialFailed",
    "VerdictSpec",
    "clear_provider_holds",
    "compare",
    "diff_configs",
    "export_batch",
    "export_run",
    "export_stage_bundle",
    "get_evaluation_execution",
    "get_execution_state",
    "get_run_progress",
    "get_run_snapshot",
    "import_batch",
    "import_candidates",
    "import_stage_bundle",
    "live_viewer",
    "load_report",
    "log_table",
    "plugin",
    "provider_holds",
    "quickcheck",
    "replay",
    "resume",
    "runs",
    "viewer_app",
]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_all_is_pinned_and_sorted() -> None:
    assert themis.__all__ == PUBLIC_API
    assert sorted(themis.__all__) == themis.__all__


@pytest.mark.parametrize("name", PUBLIC_API)
def test_every_exported_name_resolves(name: str) -> None:
    exported = getattr(themis, name)

    assert exported is not None
    assert getattr(exported, "__module__", "").startswith("themis.")


def test_the_lazy_table_says_what_the_type_checkers_imports_say() -> None:
    tree = ast.parse(Path(themis.__file__).read_text(encoding="utf-8"))
    (guarded,) = [node for node in tree.body if isinstance(node, ast.If)]  # if TYPE_CHECKING:
    imported = {
        alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }

    assert imported == themis._HOME_OF
    assert sorted(imported) == PUBLIC_API


def test_import_themis_loads_no_engine() -> None:
    # `import themis` stays cheap: trio, httpx, DuckDB and the app load on first use of a name.
    code = (
        "import sys, themis; print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'trio', 'httpx', 'duckdb', 'jinja2', 'attrs', 'httptools'}), "
        "sorted(m for m in sys.modules if m.startswith('themis.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert loaded.strip() == "[] []"


def test_a_fake_model_clock_and_store_from_the_top_level_package() -> None:
    # What the docs tell users to build a deterministic test from, without deep imports.
    class Echo:
        """The expected answer, after one 503 per request (retried: `server` is retryable)."""

        def __init__(self) -> None:
            self.calls: dict[str, int] = {}

        async def generate(self, request: themis.ModelRequest) -> themis.ModelResponse:
            assert isinstance(request.messages[0], themis.Message)
            self.calls[request.trial_key] = self.calls.get(request.trial_key, 0) + 1
            if self.calls[request.trial_key] == 1:
                raise themis.ModelCallError(themis.FailureKind.SERVER, "once", status=503)
            return themis.ModelResponse(text=f"The answer is {request.reference}.")

    model: themis.ModelPort = Echo()
    store = themis.MemoryStore()
    result = Experiment.from_spec(_spec()).run(
        store,
        models={"fake": model},
        clock=themis.FakeClock(),
        generation_retry_delay=0,
        progress="off",
    )

    assert [(row.model, row.mean) for row in result.report.rows] == [("good", 1.0), ("poor", 1.0)]
    assert [summary.run_id for summary in themis.runs(store=store)] == [result.run_id]


def _spec() -> ExperimentSpec:
    """Sums of two numbers, answered by the scripted model: 5 cases x 2 models x 2 samples."""
    cases = [
        Case(id=f"sum-{a}", fields={"a": a, "b": 2 * a}, expected=str(3 * a)) for a in range(5)
    ]
    return ExperimentSpec(
        name="embedded",
        seed=11,
        samples=2,
        datasets=[DatasetSpec(name="sums", cases=cases)],
        models=[
            ModelSpec(name="good", model="fake-good", options={"skill": 0.9}),
            ModelSpec(name="poor", model="fake-poor", options={"skill": 0.3}),
        ],
        prompts=[PromptSpec(name="plain", template="What is {{ a }} + {{ b }}?")],
        parser=ParserSpec(name="number"),
        metrics=[MetricSpec(name="numeric_match")],
    )


def test_embedding_runs_reports_and_lists(tmp_path: Path) -> None:
    store = str(tmp_path / "x.duckdb")
    experiment = Experiment.from_spec(_spec())

    result = experiment.run(store=store)
    again = experiment.run(store=store)

    assert result.run_id == experiment.run_id
    assert (result.reused, result.model_calls, result.trials_executed) == (False, 20, 20)
    assert (again.reused, again.model_calls) == (True, 0)
    assert result.status == "completed"
    assert result.completed_through_stage is themis.Stage.SCORE
    assert [(row.model, row.n) for row in result.report.rows] == [("good", 10), ("poor", 10)]
    assert themis.load_report(result.run_id[:8], store=store) == result.report
    assert again.report == result.report
    listed = themis.runs(store=store)
    assert [(summary.run_id, summary.name) for summary in listed] == [(result.run_id, "embedded")]


def test_a_spec_change_changes_the_run_id_and_params_are_part_of_it() -> None:
    spec = _spec()
    reseeded = ExperimentSpec(
        name=spec.name,
        seed=12,
        samples=spec.samples,
        datasets=spec.datasets,
        models=spec.models,
        prompts=spec.prompts,
        parser=spec.parser,
        metrics=spec.metrics,
    )
    hotter = ExperimentSpec(
        name=spec.name,
        seed=spec.seed,
        samples=spec.samples,
        datasets=spec.datasets,
        models=[ModelSpec(name="good", model="fake-good", params=GenerationParams(0.5))],
        prompts=spec.prompts,
        parser=spec.parser,
        metrics=spec.metrics,
    )

    ids = {Experiment.from_spec(item).run_id for item in (spec, reseeded, hotter)}

    assert len(ids) == 3
    assert Experiment.from_spec(_spec()).run_id == Experiment.from_spec(spec).run_id


def test_a_runtime_override_in_from_file_keeps_the_run_id() -> None:
    demo = EXAMPLES / "demo.toml"

    plain = Experiment.from_file(demo)
    tuned = Experiment.from_file(demo, overrides=["runtime.max_concurrent_tasks=2"])
    reseeded = Experiment.from_file(demo, overrides=["seed=99"])

    assert tuned.run_id == plain.run_id
    assert tuned.runtime.max_concurrent_tasks == 2
    assert plain.runtime.max_concurrent_tasks == 16
    assert reseeded.run_id != plain.run_id


@pytest.mark.parametrize(
    ("content", "overrides", "expected"),
    [
        (None, [], "file not found"),
        ('name = "x', [], "invalid TOML"),
        ("replace:samples = 3=>samples = -1", [], "samples"),
        ("replace:samples = 3=>samplez = 3", [], "samples: missing required key"),
        ("replace:{{ question }}=>{{ missing }}", [], "prompts"),
        ("replace:data/arithmetic.jsonl=>data/none.jsonl", [], "datasets[0].path"),
        ("demo", ["runtime.max_concurrent_tasks=many"], "runtime.max_concurrent_tasks"),
        ("demo", ["=1"], "KEY=VALUE"),
    ],
)
def test_from_file_raises_config_error_for_bad_input(
    tmp_path: Path, content: str | None, overrides: list[str], expected: str
) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    demo_text = (EXAMPLES / "demo.toml").read_text(encoding="utf-8")
    config = tmp_path / "config.toml"
    if content == "demo":
        config.write_text(demo_text, encoding="utf-8")
    elif content is not None and content.startswith("replace:"):
        old, new = content.removeprefix("replace:").split("=>")
        assert old in demo_text
        config.write_text(demo_text.replace(old, new), encoding="utf-8")
    elif content is not None:
        config.write_text(content, encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        Experiment.from_file(config, overrides=overrides)

    message = str(raised.value)
    assert expected in message
    assert "config.toml" in message or "--set" in message
    assert "\n" not in message


def test_an_unknown_provider_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    config = tmp_path / "config.toml"
    text = (EXAMPLES / "demo.toml").read_text(encoding="utf-8")
    config.write_text(text.replace('provider = "fake"', 'provider = "nobody"'), encoding="utf-8")
    experiment = Experiment.from_file(config)  # a caller may still supply `models={"nobody": ...}`

    with pytest.raises(ConfigError, match=r"config\.toml: models\.strong\.provider"):
        experiment.run(store=str(tmp_path / "x.duckdb"))
    assert not (tmp_path / "x.duckdb").exists()


def test_errors_share_one_base(tmp_path: Path) -> None:
    store = str(tmp_path / "x.duckdb")
    Experiment.from_spec(_spec()).run(store=store)

    with pytest.raises(RunNotFound) as raised:
        themis.load_report("0000000000", store=store)

    assert isinstance(raised.value, ThemisError)
    assert issubclass(ConfigError, ThemisError)

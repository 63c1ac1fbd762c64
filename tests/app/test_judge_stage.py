"""The judge stage through the interpreter, in virtual time: verdicts, judge failures, retries
with Retry-After, `until_stage`, resume, in-place replay without calls, pairwise swapping."""

from __future__ import annotations

import io
import re

import attrs
import pytest
import trio
import trio.testing
from rich.console import Console

from tests.app.doubles import events_of, make_spec, of_type, run_virtual
from themis.adapters.clocks import FakeClock
from themis.adapters.stores.memory import MemoryStore
from themis.app.execution.ports import Ports
from themis.app.execution.trials import ProgressCounts
from themis.app.render.evaluation import evaluation_json
from themis.app.render.progress_bar import ProgressBar
from themis.app.usecases.resume import prepare_replay
from themis.app.usecases.runs import Driving, RunRequest, run_experiment
from themis.core.breakdown import Breakdown
from themis.core.evaluation_view import evaluation_execution
from themis.core.events import (
    GenerationCompleted,
    GenerationRetried,
    JudgeCompleted,
    JudgeFailed,
)
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.inspection import execution_state
from themis.core.planner import ModelRequest, compile_run
from themis.core.report import build_report
from themis.core.runtime import RuntimeConfig
from themis.core.spec import (
    Case,
    ExperimentSpec,
    JudgeSpec,
    MetricSpec,
    ModelSpec,
    ReducerSpec,
    VerdictSpec,
)
from themis.core.stages import Stage
from themis.core.state import project
from themis.core.verdicts import UNPARSEABLE

JUDGE_MODEL = ModelSpec(name="grader", model="fake-judge", provider="fake")
TEMPLATE = "Question {{ n }}. Answer: <{{ candidate }}>. Reference: <{{ reference }}>."


def judged_spec(**judge: object) -> ExperimentSpec:
    values: dict[str, object] = {
        "name": "q",
        "models": (JUDGE_MODEL,),
        "template": TEMPLATE,
        "verdict": VerdictSpec(kind="scale", min=0, max=1),
        "repeats": 2,
    }
    values.update(judge)
    return attrs.evolve(make_spec(4), judges=(JudgeSpec(**values),))  # type: ignore[arg-type]


class Models:
    """The `fake` provider for both roles: the model under test answers `n` right except for
    case 1; the judge says 1 when the answer equals the reference, and nothing usable for case
    3. Calls are counted per model id."""

    def __init__(self, *, judge_failures: int = 0, hint: float | None = None) -> None:
        self.calls: dict[str, int] = {}
        self.judge_failures = judge_failures
        self.hint = hint
        self.failed: dict[str, int] = {}

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls[request.model] = self.calls.get(request.model, 0) + 1
        await trio.sleep(0.1)
        if request.model != "fake-judge":
            text = "wrong" if request.reference == "1" else (request.reference or "")
            return ModelResponse(text=text, finish_reason="stop", served_model="served-m")
        seen = self.failed.get(request.trial_key, 0)
        if seen < self.judge_failures:
            self.failed[request.trial_key] = seen + 1
            raise ModelCallError("rate_limit", "HTTP 429", status=429, retry_after_s=self.hint)
        prompt = request.messages[-1].content
        answer, reference = re.findall(r"<(.*?)>", prompt)
        if prompt.startswith("Question 3."):
            return ModelResponse(text="I cannot decide.", served_model="judge-v2")
        verdict = "1" if answer == reference else "0"
        return ModelResponse(
            text=f"Fine.\nVERDICT: {verdict}",
            input_tokens=20,
            output_tokens=3,
            served_model="judge-v2",
        )


def test_a_judged_run_logs_verdicts_and_reports_judge_rows() -> None:
    store, models = MemoryStore(), Models()
    compiled = compile_run(judged_spec())
    result = run_virtual(compiled, models, store, until_stage=Stage.JUDGE)
    assert result.status == "completed"
    assert result.report.completed_through_stage is Stage.JUDGE
    assert models.calls == {"fake-1": 4, "fake-judge": 8}  # 4 candidates x 2 repeats
    events = events_of(store, compiled.run_id)
    verdicts = of_type(events, JudgeCompleted)
    assert len(verdicts) == 6
    assert {(v.served_model, v.input_tokens, v.output_tokens) for v in verdicts} == {
        ("judge-v2", 20, 3)
    }
    assert all(v.messages[-1][1].startswith("Question ") for v in verdicts)
    failures = of_type(events, JudgeFailed)
    assert [(f.error_kind, f.text) for f in failures] == [(UNPARSEABLE, "I cannot decide.")] * 2
    assert "no verdict line" in failures[0].message
    (row,) = [row for row in result.report.rows if row.judge]
    assert (row.metric, row.n, row.judge_failed) == ("q", 3, 1)
    assert row.mean == pytest.approx(2 / 3)  # case 1 is wrong; case 3 is a judge failure
    repeats = {v.repeat for v in verdicts}
    assert repeats == {0, 1}
    seeds = {(v.candidate_id, v.repeat): v.call_key for v in verdicts}
    assert len(set(seeds.values())) == 6  # each repeat its own seed, hence its own call


def test_identity_includes_the_judge_and_excludes_its_runtime() -> None:
    base = compile_run(judged_spec())
    assert compile_run(make_spec(4)).run_id != base.run_id
    assert compile_run(judged_spec(repeats=3)).run_id != base.run_id
    assert compile_run(judged_spec(rubric="be strict")).run_id != base.run_id
    slow = attrs.evolve(JUDGE_MODEL, options={"latency_s": 0.5})
    assert compile_run(judged_spec(models=(slow,))).run_id == base.run_id


def test_until_score_then_judge_makes_no_generation_call_the_second_time() -> None:
    store, models = MemoryStore(), Models()
    compiled = compile_run(judged_spec())
    first = run_virtual(compiled, models, store, until_stage=Stage.SCORE)
    assert first.report.completed_through_stage is Stage.SCORE
    assert not of_type(events_of(store, compiled.run_id), JudgeCompleted)
    assert models.calls == {"fake-1": 4}
    second = run_virtual(compiled, models, store, until_stage=Stage.JUDGE)
    assert models.calls == {"fake-1": 4, "fake-judge": 8}
    assert second.report.completed_through_stage is Stage.JUDGE
    again = run_virtual(compiled, models, store, until_stage=Stage.JUDGE)
    assert again.reused
    assert models.calls == {"fake-1": 4, "fake-judge": 8}


def test_replay_of_the_judge_stage_calls_no_model_and_reports_the_same() -> None:
    store, models = MemoryStore(), Models()
    compiled = compile_run(judged_spec())
    judged = run_virtual(compiled, models, store, until_stage=Stage.JUDGE)
    prepared = prepare_replay(store, compiled.run_id, Stage.JUDGE)
    counting = Models()
    replayed = prepared.execute(
        Ports(store=store, clock=FakeClock(), models={"fake": counting}),
        Driving(trio_clock=trio.testing.MockClock(autojump_threshold=0)),
    )
    assert counting.calls == {}
    assert replayed.report.rows == judged.report.rows
    assert replayed.report.agreement == judged.report.agreement
    assert replayed.report.completed_through_stage is Stage.JUDGE


def test_judge_retries_follow_judge_retry_settings_and_keep_retry_after() -> None:
    store, models = MemoryStore(), Models(judge_failures=1, hint=3.0)
    compiled = compile_run(judged_spec())
    runtime = RuntimeConfig(judge_retry_attempts=2, judge_retry_delay=0.0)
    run_virtual(compiled, models, store, runtime=runtime, until_stage=Stage.JUDGE)
    events = events_of(store, compiled.run_id)
    assert len(of_type(events, JudgeCompleted)) == 6
    keys = {v.call_key for v in of_type(events, JudgeCompleted)}
    calls = [g for g in of_type(events, GenerationCompleted) if g.trial_key in keys]
    assert len(calls) == 6
    assert all(len(g.retries) == 1 and g.retries[0].retry_after_s == 3.0 for g in calls)
    retried = [r for r in of_type(events, GenerationRetried) if r.trial_key in keys]
    assert len(retried) == 6
    assert all(r.retry_after_s == 3.0 and r.delay_s == 3.0 for r in retried)

    store, models = MemoryStore(), Models(judge_failures=1, hint=3.0)
    runtime = RuntimeConfig(judge_retry_attempts=1, generation_retry_attempts=5)
    result = run_virtual(compiled, models, store, runtime=runtime, until_stage=Stage.JUDGE)
    failures = of_type(events_of(store, compiled.run_id), JudgeFailed)
    assert len(failures) == 8
    assert {f.error_kind for f in failures} == {"rate_limit"}
    (row,) = [row for row in result.report.rows if row.judge]
    assert (row.n, row.judge_failed, row.mean) == (0, 4, None)  # judge failures are never 0


def test_pairwise_judging_swaps_the_order_on_odd_repeats() -> None:
    spec = judged_spec()
    second = ModelSpec(name="m2", model="fake-2", provider="fake")
    spec = attrs.evolve(spec, models=(*spec.models, second))
    judge = JudgeSpec(
        name="pair",
        models=(JUDGE_MODEL,),
        template="Which is better? A: [{{ candidate_a }}] B: [{{ candidate_b }}]",
        verdict=VerdictSpec(kind="labels", labels={"A": 1.0, "B": 0.0, "tie": 0.5}),
        repeats=2,
        pairwise=("m", "m2"),
    )
    spec = attrs.evolve(spec, judges=(judge,))

    class AlwaysA(Models):
        async def generate(self, request: ModelRequest) -> ModelResponse:
            if request.model == "fake-judge":
                self.calls["fake-judge"] = self.calls.get("fake-judge", 0) + 1
                return ModelResponse(text="VERDICT: A")
            return await super().generate(request)

    store = MemoryStore()
    compiled = compile_run(spec)
    result = run_virtual(compiled, AlwaysA(), store, until_stage=Stage.JUDGE)
    verdicts = of_type(events_of(store, compiled.run_id), JudgeCompleted)
    assert len(verdicts) == 8  # 4 pairs x 2 repeats
    assert [v.swapped for v in verdicts if v.repeat == 0] == [False] * 4
    assert [v.swapped for v in verdicts if v.repeat == 1] == [True] * 4
    # a judge that always prefers the first position: the swap undoes it, to exactly 0.5
    assert {v.score for v in verdicts if v.swapped} == {0.0}
    assert {v.score for v in verdicts if not v.swapped} == {1.0}
    (row,) = [row for row in result.report.rows if row.judge]
    assert (row.model, row.mean) == ("m vs m2", 0.5)


def test_inspection_shows_each_verdict_and_the_judge_stage_counts() -> None:
    store, models = MemoryStore(), Models(judge_failures=1, hint=1.0)
    compiled = compile_run(judged_spec())
    runtime = RuntimeConfig(judge_retry_attempts=2, judge_retry_delay=0.0)
    run_virtual(compiled, models, store, runtime=runtime, until_stage=Stage.JUDGE)
    state = project(events_of(store, compiled.run_id))
    view = evaluation_execution(compiled, state, "c3")
    assert [(j.judge_model, j.repeat, j.status) for j in view.judgements] == [
        ("grader", 0, "judge failed"),
        ("grader", 1, "judge failed"),
    ]
    failed = view.judgements[0].judgement
    assert isinstance(failed, JudgeFailed)
    assert failed.text == "I cannot decide."
    assert view.judgements[0].call is not None
    assert view.judgements[0].call.retries[0].retry_after_s == 1.0
    document = evaluation_json(view)["judgements"][0]
    assert document["response"] == "I cannot decide."
    assert document["error"]["kind"] == UNPARSEABLE
    assert document["messages"][0]["content"].startswith("Question 3.")
    assert document["retries"][0]["retry_after_s"] == 1.0
    good = evaluation_json(evaluation_execution(compiled, state, "c0"))["judgements"][0]
    assert (good["verdict"], good["score"], good["status"]) == ("1", 1.0, "judged")

    counts = execution_state(compiled, state).counts(Stage.JUDGE)
    assert (counts.planned, counts.done, counts.failed, counts.pending) == (4, 3, 1, 0)


def test_every_report_format_shows_judge_rows_and_agreement() -> None:
    from themis import Reporter

    store, models = MemoryStore(), Models()
    compiled = compile_run(judged_spec())
    result = run_virtual(compiled, models, store, until_stage=Stage.JUDGE)
    assert result.report.agreement  # two repeats: the judge's self-agreement
    reporter = Reporter(compiled.run_id, store)
    markdown, latex, html = (reporter.render(f) for f in ("md", "latex", "html"))
    (judge_row,) = [line for line in markdown.splitlines() if line.startswith("| d | m | p | q |")]
    assert judge_row.endswith("| 1 |")  # judge failed, the last column
    assert "Judge agreement:" in markdown
    assert markdown.count("\n| q | ") == len(result.report.agreement)
    assert r"\par\medskip" in latex
    assert '<table id="agreement">' in html
    header, *lines = reporter.render("csv").splitlines()
    assert header.endswith(",cache_hits,judge_failed,raters")  # raters: agreement rows (CSV)
    assert {line.count(",") for line in lines} == {header.count(",")}
    agreement = [line for line in lines if ",agreement:" in line]
    assert len(agreement) == len(result.report.agreement)
    by_field = Reporter(compiled.run_id, store, by=["model", "n"]).render("csv")
    header, *lines = by_field.splitlines()
    assert {line.count(",") for line in lines} == {header.count(",")}  # judge rows aligned


def test_the_progress_display_counts_the_judge_stage() -> None:
    store, models = MemoryStore(), Models()
    compiled = compile_run(judged_spec())
    seen: list[ProgressCounts] = []
    run_experiment(
        RunRequest(compiled, RuntimeConfig(), Stage.JUDGE),
        Ports(store=store, clock=FakeClock(), models={"fake": models}),
        Driving(
            on_progress=lambda counts: seen.append(attrs.evolve(counts)),
            trio_clock=trio.testing.MockClock(autojump_threshold=0),
        ),
    )
    last = seen[-1]
    assert (last.judge_calls, last.judged, last.judge_failed) == (8, 6, 2)
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    with ProgressBar(console, "run") as bar:
        bar.update(last)
    assert "judge 8/8 verdicts (2 failed)" in console.file.getvalue()


def test_identical_judge_calls_of_another_run_are_reused_not_repeated() -> None:
    store = MemoryStore()
    first = compile_run(judged_spec())
    run_virtual(first, Models(), store, until_stage=Stage.JUDGE)
    # Another run (another metric): the same generations and the same judge calls, by content.
    other = compile_run(attrs.evolve(judged_spec(), metrics=(MetricSpec(name="contains"),)))
    assert other.run_id != first.run_id
    models = Models()
    result = run_virtual(other, models, store, until_stage=Stage.JUDGE)
    assert models.calls == {}
    events = events_of(store, other.run_id)
    calls = {v.call_key for v in of_type(events, JudgeCompleted)}
    reused = [g for g in of_type(events, GenerationCompleted) if g.trial_key in calls]
    assert len(reused) == 6
    assert all(g.cache_hit and g.source_run == first.run_id for g in reused)
    (row,) = [row for row in result.report.rows if row.judge]
    assert row.mean == pytest.approx(2 / 3)


def test_retry_failed_calls_the_judge_again_where_its_call_failed_for_good() -> None:
    store = MemoryStore()
    compiled = compile_run(judged_spec())
    runtime = RuntimeConfig(judge_retry_attempts=1)
    failing = Models(judge_failures=1, hint=None)
    run_virtual(compiled, failing, store, runtime=runtime, until_stage=Stage.JUDGE)
    assert {f.error_kind for f in of_type(events_of(store, compiled.run_id), JudgeFailed)} == {
        "rate_limit"
    }
    again = run_virtual(compiled, Models(), store, runtime=runtime, until_stage=Stage.JUDGE)
    assert again.reused  # a plain resume leaves judge failures as they are
    models = Models()
    result = run_experiment(
        RunRequest(compiled, runtime, Stage.JUDGE, retry_failed=True),
        Ports(store=store, clock=FakeClock(), models={"fake": models}),
        Driving(trio_clock=trio.testing.MockClock(autojump_threshold=0)),
    )
    assert models.calls == {"fake-judge": 8}  # only the judge calls, not the generations
    (row,) = [row for row in result.report.rows if row.judge]
    assert (row.n, row.judge_failed, row.mean) == (3, 1, pytest.approx(2 / 3))
    state = project(events_of(store, compiled.run_id))
    kinds = sorted(
        j.error_kind if isinstance(j, JudgeFailed) else "judged" for j in state.judgements.values()
    )
    assert kinds == ["judged"] * 6 + [UNPARSEABLE] * 2


def test_a_judge_reads_parsed_answers_or_the_reduced_candidate() -> None:
    base = attrs.evolve(make_spec(4, samples=2), reducer=ReducerSpec(name="first"))
    for kind, candidates in (("parsed", 8), ("reduced", 4)):
        judge = JudgeSpec(
            name="q",
            models=(JUDGE_MODEL,),
            template=TEMPLATE,
            verdict=VerdictSpec(kind="scale", min=0, max=1),
            candidate=kind,
        )
        store, models = MemoryStore(), Models()
        compiled = compile_run(attrs.evolve(base, judges=(judge,)))
        result = run_virtual(compiled, models, store, until_stage=Stage.JUDGE)
        assert models.calls["fake-judge"] == candidates, kind
        events = events_of(store, compiled.run_id)
        judged = {e.candidate_id for e in of_type(events, JudgeCompleted)}
        judged |= {e.candidate_id for e in of_type(events, JudgeFailed)}
        assert len(judged) == candidates, kind
        (row,) = [row for row in result.report.rows if row.judge]
        assert row.judge_failed == (2 if kind == "parsed" else 1), kind  # case 3's candidates


def test_judge_rows_break_down_by_case_fields_like_metric_rows() -> None:
    # Cases 0 and 1 are easy, 2 and 3 hard: case 1's answer is wrong (verdict 0), case 3's
    # verdicts never parse (a judge failure, left out of the mean).
    levels = ("easy", "easy", "hard", "hard")
    cases = tuple(
        Case(id=f"c{n}", fields={"n": n, "level": level}, expected=str(n))
        for n, level in enumerate(levels)
    )
    spec = attrs.evolve(make_spec(cases=cases), judges=judged_spec().judges)
    compiled = compile_run(spec)
    store = MemoryStore()
    run_virtual(compiled, Models(), store, until_stage=Stage.JUDGE)
    state = project(events_of(store, compiled.run_id))

    report = build_report(compiled, state, by=Breakdown.of(["level"]))

    judged = {row.case_fields["level"]: row for row in report.rows if row.judge}
    assert set(judged) == {"easy", "hard"}
    easy, hard = judged["easy"], judged["hard"]
    assert (easy.dataset, easy.model, easy.prompt, easy.metric) == ("d", "m", "p", "q")
    assert (easy.mean, easy.n, easy.judge_failed) == (0.5, 2, 0)
    assert (hard.mean, hard.n, hard.judge_failed) == (1.0, 1, 1)
    metric = {row.case_fields["level"] for row in report.rows if not row.judge}
    assert metric == set(judged)

    # Pooling the prompt and model: still one cluster per case, the judge's rows as the metric's.
    pooled = build_report(compiled, state, by=Breakdown.of(["dataset", "level"]))
    places = {(r.model, r.prompt, r.case_fields["level"]) for r in pooled.rows if r.judge}
    assert places == {("*", "*", "easy"), ("*", "*", "hard")}

"""`themis inspect evaluation`: every trial of one case, as a table for people and as JSON.

The JSON holds every recorded fact of each trial (messages, the generation with its usage,
provenance, retries and token log-probabilities, the failure, the parse and the scores); the
table shortens responses to one line and shows retries only when some trial had them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from themis.app.render.executions import execution_json, execution_tables, group_json
from themis.app.render.inspect_views import view_title
from themis.app.render.runtime_controls import retries_cell, retries_json
from themis.core.evaluation_view import EvaluationExecution, JudgementView, TrialExecution
from themis.core.events import GenerationCompleted, GenerationFailed, JudgeCompleted, JudgeFailed
from themis.core.generation import TokenLogprob

__all__ = ["evaluation_json", "evaluation_render"]

_RESPONSE_WIDTH = 36  # columns of the response cell; it wraps, up to _RESPONSE_CHARS shown
_RESPONSE_CHARS = 144
_ANSWER_WIDTH = 16
_CONTENT_WIDTH = 64  # a rendered message's column in the messages table


def _logprobs_json(logprobs: tuple[TokenLogprob, ...] | None) -> list[dict[str, Any]] | None:
    if logprobs is None:
        return None
    return [
        {
            "token": token.token,
            "logprob": token.logprob,
            "top": [{"token": text, "logprob": value} for text, value in token.top],
        }
        for token in logprobs
    ]


def _trial_json(trial: TrialExecution) -> dict[str, Any]:
    generation, failure, parse, score = trial.generation, trial.failure, trial.parse, trial.score
    return {
        "dataset": trial.dataset,
        "model": trial.model,
        "prompt": trial.prompt,
        "sample": trial.sample,
        "trial_id": trial.trial_id,
        "trial_key": trial.trial_key,
        "status": trial.status,
        "expected": trial.expected,
        "messages": [{"role": m.role, "content": m.content} for m in trial.messages],
        "generation": None
        if generation is None
        else {
            "text": generation.text,
            "finish_reason": generation.finish_reason,
            "input_tokens": generation.input_tokens,
            "output_tokens": generation.output_tokens,
            "latency_s": generation.latency_s,
            "served_model": generation.served_model,
            "response_id": generation.response_id,
            "system_fingerprint": generation.system_fingerprint,
            "attempts": generation.attempts,
            "cache_hit": generation.cache_hit,
            "source_run": generation.source_run,
            "retries": retries_json(generation.retries),
            "logprobs": _logprobs_json(generation.logprobs),
        },
        "failure": None
        if failure is None
        else {
            "kind": failure.error_kind,
            "message": failure.message,
            "attempts": failure.attempts,
            "retries": retries_json(failure.retries),
        },
        "parse": None if parse is None else {"answer": parse.answer, "error": parse.error},
        "scores": None if score is None else dict(score.scores),
        "execution": execution_json(trial.execution),
        "earlier_failures": [
            {
                "kind": earlier.error_kind,
                "message": earlier.message,
                "attempts": earlier.attempts,
                "execution": earlier.execution,
            }
            for earlier in trial.earlier_failures
        ],
    }


def evaluation_json(view: EvaluationExecution) -> dict[str, Any]:
    return {
        "run_id": view.run_id,
        "case_id": view.case_id,
        "trials": [_trial_json(trial) for trial in view.trials],
        "groups": [group_json(group) for group in view.groups],
        "judgements": [_judgement_json(judgement) for judgement in view.judgements],
    }


def _judgement_json(view: JudgementView) -> dict[str, Any]:
    judgement, call = view.judgement, view.call
    document: dict[str, Any] = {
        "judge": view.judge,
        "candidate_id": view.candidate_id,
        "dataset": view.dataset,
        "model": view.model,
        "prompt": view.prompt,
        "judge_model": view.judge_model,
        "repeat": view.repeat,
        "status": view.status,
    }
    if judgement is None:
        return document
    document.update(
        call_key=judgement.call_key,
        swapped=judgement.swapped,
        messages=[{"role": role, "content": content} for role, content in judgement.messages],
        response=judgement.text,
    )
    if isinstance(judgement, JudgeCompleted):
        document.update(
            verdict=judgement.verdict,
            score=judgement.score,
            criteria=dict(judgement.criteria),
            served_model=judgement.served_model,
            input_tokens=judgement.input_tokens,
            output_tokens=judgement.output_tokens,
        )
    else:
        document.update(error={"kind": judgement.error_kind, "message": judgement.message})
    if call is not None:
        document.update(
            attempts=call.attempts,
            cache_hit=isinstance(call, GenerationCompleted) and call.cache_hit,
            retries=retries_json(call.retries),
        )
    return document


def _judgements_table(view: EvaluationExecution) -> Table:
    """Each verdict on the case's candidates: the verdict and score, or why there is none (a
    judge failure shows the raw response), and the retries of its call."""
    table = Table(
        title="judge verdicts",
        title_justify="left",
        caption="judge prompts, responses and usage: --json",
        caption_justify="left",
    )
    for column in ("judge", "model", "prompt", "judge model", "repeat", "status", "verdict"):
        table.add_column(column, justify="right" if column == "repeat" else "left")
    table.add_column("score", justify="right")
    table.add_column("response", max_width=_RESPONSE_WIDTH, overflow="fold")
    table.add_column("retries", max_width=_RESPONSE_WIDTH, overflow="fold")
    for item in view.judgements:
        judgement = item.judgement
        verdict = score = response = ""
        if isinstance(judgement, JudgeCompleted):
            verdict, score = judgement.verdict, f"{judgement.score:g}"
            response = _short(judgement.text)
        elif isinstance(judgement, JudgeFailed):
            verdict = judgement.error_kind
            response = _short(judgement.text or judgement.message)
        completed = item.call if isinstance(item.call, GenerationCompleted) else None
        failed = item.call if isinstance(item.call, GenerationFailed) else None
        table.add_row(
            item.judge,
            item.model,
            item.prompt,
            item.judge_model,
            str(item.repeat),
            item.status,
            verdict,
            score,
            response,
            retries_cell(completed, failed) if item.call is not None else "",
        )
    return table


def _short(text: str, width: int = _RESPONSE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _scores(scores: Mapping[str, float]) -> str:
    return "\n".join(f"{name}={value:g}" for name, value in scores.items())


def _messages(view: EvaluationExecution) -> RenderableType:
    """Each distinct rendered request once (they depend on dataset and prompt, not the model)."""
    seen: dict[tuple[str, str], TrialExecution] = {}
    for trial in view.trials:
        seen.setdefault((trial.dataset, trial.prompt), trial)
    table = Table(title="messages", title_justify="left", show_lines=True)
    for column in ("dataset", "prompt", "role"):
        table.add_column(column)
    table.add_column("content", max_width=_CONTENT_WIDTH, overflow="fold")
    for (dataset, prompt), trial in seen.items():
        for message in trial.messages:
            table.add_row(dataset, prompt, message.role, message.content)
    return table


def evaluation_render(view: EvaluationExecution) -> RenderableType:
    expected = sorted({trial.expected for trial in view.trials if trial.expected is not None})
    title = view_title(
        f"case {view.case_id}",
        f"run {view.run_id[:12]}",
        f"expected {', '.join(expected) or '—'}",
        live=None,
    )
    table = Table(
        title=title,
        title_justify="left",
        caption="finish reasons, tokens, latency, served model and cache hits: --json",
        caption_justify="left",
    )
    for column in ("model", "prompt", "sample", "status"):
        table.add_column(column, justify="right" if column == "sample" else "left")
    table.add_column("response", max_width=_RESPONSE_WIDTH, overflow="fold")
    table.add_column("answer", max_width=_ANSWER_WIDTH, overflow="fold")
    table.add_column("scores")
    histories = [retries_cell(trial.generation, trial.failure) for trial in view.trials]
    if any(histories):  # a transient recovery or a hard failure after retries
        table.add_column("retries", max_width=_RESPONSE_WIDTH, overflow="fold")
    for trial, history in zip(view.trials, histories, strict=True):
        generation, failure, parse = trial.generation, trial.failure, trial.parse
        if failure is not None:
            response = f"{failure.error_kind}: {_short(failure.message)}"
        else:
            response = "" if generation is None else _short(generation.text)
        answer = "" if parse is None else (parse.answer or f"({parse.error or 'no answer'})")
        table.add_row(
            trial.model,
            trial.prompt,
            str(trial.sample),
            trial.status,
            response,
            answer,
            "" if trial.score is None else _scores(trial.score.scores),
            *([history] if any(histories) else []),
        )
    earlier = [
        f"{trial.model} / {trial.prompt} / sample {trial.sample}: execution "
        f"{failure.execution} failed with {failure.error_kind}: {_short(failure.message)}"
        for trial in view.trials
        for failure in trial.earlier_failures
    ]
    judged = [_judgements_table(view)] if view.judgements else []
    if earlier:  # failures a retry superseded: history, not the current state
        superseded = Text("earlier failures:\n  " + "\n  ".join(earlier))
        return Group(_messages(view), table, *execution_tables(view), *judged, superseded)
    return Group(_messages(view), table, *execution_tables(view), *judged)

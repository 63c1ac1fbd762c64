"""What `themis estimate` prints: a table per model with the lines around it, and stable JSON.

The JSON is documented in docs/how-to/plan-and-estimate.md; its keys only ever grow.
Costs are in whatever currency `runtime.model_prices` uses; times are in seconds.

The estimate itself is computed by `themis.core.estimate` (the same concept, pure); this only
renders it.
"""

from __future__ import annotations

from typing import Any

import attrs
from rich.table import Table

from themis.app.render.reports import counted
from themis.core.estimate import Assumptions, Estimate, ModelEstimate, duration
from themis.core.runtime import Price, RateLimit

NO_JUDGE_NOTE = "judge: none (the experiment has no [[judges]])"
JUDGE_NOTE = (
    "judge: prompt tokens from each judge prompt rendered per case, plus the judged answers' "
    "assumed output tokens; every candidate assumed to answer"
)
TIME_NOTE = "time: a lower bound (calls in waves of the assumed latency, and the rate limits)"
CONCURRENCY = "concurrency"
RATE_LIMITS = "rate_limits"


def limited_by(result: Estimate) -> str:
    """What bounds the time: `"rate_limits"` when a quota is slower than concurrency allows."""
    calls = (*result.models, *result.judges)
    unlimited = duration(calls, attrs.evolve(result.assumptions, rate_limits={}))
    return RATE_LIMITS if result.duration_s > unlimited else CONCURRENCY


def output_rule(assumptions: Assumptions) -> str:
    """The output-length assumption in words."""
    assumed = assumptions.assumed_output_tokens
    if assumed is None:
        return "each call's output is its model's params.max_tokens"
    return f"{assumed} tokens per call, at most the model's params.max_tokens"


# --- JSON --------------------------------------------------------------------------------------


def _model_json(model: ModelEstimate) -> dict[str, Any]:
    return {
        "name": model.model,
        "provider": model.provider,
        "model_calls": model.calls,
        "input_tokens": model.input_tokens,
        "output_tokens": model.output_tokens,
        "cost": model.cost,
    }


def _price_json(price: Price) -> dict[str, float]:
    return {"input_per_1k": price.input_per_1k, "output_per_1k": price.output_per_1k}


def _limit_json(limit: RateLimit) -> dict[str, float | None]:
    return {
        "requests_per_minute": limit.requests_per_minute,
        "tokens_per_minute": limit.tokens_per_minute,
    }


def assumptions_json(assumptions: Assumptions) -> dict[str, Any]:
    return {
        "tokenizer": {"name": assumptions.tokenizer, "description": assumptions.tokenizer_rule},
        "output_tokens": {
            "assumed_output_tokens": assumptions.assumed_output_tokens,
            "rule": output_rule(assumptions),
        },
        "retry_allowance": assumptions.retry_allowance,
        "assumed_latency_s": assumptions.assumed_latency_s,
        "concurrency": {
            "max_concurrent_tasks": assumptions.max_concurrent_tasks,
            "generate": assumptions.generate_concurrency,
            "providers": dict(sorted(assumptions.provider_concurrency.items())),
        },
        "prices": {name: _price_json(p) for name, p in sorted(assumptions.prices.items())},
        "rate_limits": {
            name: _limit_json(limit) for name, limit in sorted(assumptions.rate_limits.items())
        },
    }


def _judge_json(result: Estimate) -> dict[str, Any] | None:
    if not result.judges:
        return None
    return {
        "model_calls": sum(model.calls for model in result.judges),
        "input_tokens": result.judge_input_tokens,
        "output_tokens": result.judge_output_tokens,
        "models": [_model_json(model) for model in result.judges],
    }


def estimate_json(result: Estimate, name: str) -> dict[str, Any]:
    """`themis estimate --json`: counts, tokens, cost, time and the assumptions behind them."""
    return {
        "run_id": result.run_id,
        "name": name,
        "trials": result.trials,
        "stages": dict(result.stage_trials),
        "model_calls": sum(model.calls for model in result.models),
        "generation": {
            "input_tokens": result.generation_input_tokens,
            "output_tokens": result.generation_output_tokens,
            "models": [_model_json(model) for model in result.models],
        },
        "judge": _judge_json(result),
        "retry_tokens": result.retry_tokens,
        "estimated_total_tokens": result.estimated_total_tokens,
        "cost": {"total": result.cost, "unpriced_models": list(result.unpriced_models)},
        "time": {"duration_s": result.duration_s, "limited_by": limited_by(result)},
        "assumptions": assumptions_json(result.assumptions),
        "notes": [JUDGE_NOTE if result.judges else NO_JUDGE_NOTE, TIME_NOTE],
    }


# --- table -------------------------------------------------------------------------------------


def _cost(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def format_duration(seconds: float) -> str:
    """`42.0s`, `4m 48s`, `2h 05m 00s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def estimate_header(result: Estimate, name: str) -> list[str]:
    """The lines above the table: the run, then trials per stage."""
    stages = " · ".join(
        f"{stage} {counted(count, 'model call' if stage in ('generate', 'judge') else 'trial')}"
        for stage, count in result.stage_trials.items()
    )
    return [
        f"run_id {result.run_id}",
        f"{name} · {counted(result.trials, 'trial')} · stages: {stages}",
    ]


def estimate_table(result: Estimate) -> Table:
    """One row per model (calls, input and assumed output tokens, cost), then the totals."""
    table = Table()
    table.add_column("model")
    table.add_column("provider")
    for column in ("model calls", "input tokens", "output tokens", "cost"):
        table.add_column(column, justify="right")
    for model in result.models:
        table.add_row(
            model.model,
            model.provider,
            f"{model.calls:,}",
            f"{model.input_tokens:,}",
            f"{model.output_tokens:,}",
            _cost(model.cost),
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        f"{sum(model.calls for model in result.models):,}",
        f"{result.generation_input_tokens:,}",
        f"{result.generation_output_tokens:,}",
        _cost(result.cost),
    )
    return table


def estimate_lines(result: Estimate) -> list[str]:
    """The lines below the table: judge, tokens, cost, time, then the assumptions, one a line."""
    a = result.assumptions
    if result.judges:
        judge = (
            "judge: "
            + ", ".join(
                f"{model.model} {counted(model.calls, 'call')} "
                f"({model.input_tokens:,} input + {model.output_tokens:,} output tokens)"
                for model in result.judges
            )
            + f"; {JUDGE_NOTE.removeprefix('judge: ')}"
        )
        judged = (
            f" + judge {result.judge_input_tokens:,} input + {result.judge_output_tokens:,} output"
        )
    else:
        judge, judged = NO_JUDGE_NOTE, ""
    return [
        judge,
        f"tokens: {result.generation_input_tokens:,} input + "
        f"{result.generation_output_tokens:,} output{judged} + {result.retry_tokens:,} retry "
        f"allowance = {result.estimated_total_tokens:,} estimated in total",
        _cost_line(result),
        _time_line(result),
        "assumptions:",
        f"  tokenizer: {a.tokenizer_rule}",
        f"  output: {output_rule(a)} (runtime.assumed_output_tokens)",
        f"  retries: {a.retry_allowance:.0%} more calls (--retry-allowance)",
        f"  latency: {a.assumed_latency_s:g}s per call (runtime.assumed_latency_s)",
    ]


def _cost_line(result: Estimate) -> str:
    if result.cost is not None:
        return f"cost: {result.cost:.4f} (runtime.model_prices, retry allowance included)"
    if len(result.unpriced_models) == len(result.models) + len(result.judges):
        return "cost: not estimated (no runtime.model_prices for these models)"
    return (
        f"cost: no total; no price for {', '.join(result.unpriced_models)} "
        "(set runtime.model_prices.<model>)"
    )


def _time_line(result: Estimate) -> str:
    a = result.assumptions
    slots = min(a.max_concurrent_tasks, a.generate_concurrency or a.max_concurrent_tasks)
    caps = ", ".join(f"{name} {cap}" for name, cap in sorted(a.provider_concurrency.items()))
    per_provider = f", per provider {caps}" if caps else ""
    basis = (
        "limited by provider_rate_limits"
        if limited_by(result) == RATE_LIMITS
        else f"limited by concurrency: {slots} calls at once{per_provider}; "
        f"{a.assumed_latency_s:g}s per call"
    )
    return f"time: at least {format_duration(result.duration_s)} ({basis})"

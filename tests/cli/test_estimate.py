"""`themis estimate` in-process: counts, tokens, cost and time for the demo and for a tiny config
computed by hand; the table and the JSON; no model call and no store; one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Invoke, one_error_line, output_json, trimmed
from tests.tripwires import Tripwire

TRIALS = 24 * 2 * 2 * 3  # the demo: cases x models x prompts x samples
STRONG_PRICE = "runtime.model_prices.strong={input_per_1k=0.5,output_per_1k=1.5}"
WEAK_PRICE = "runtime.model_prices.weak={input_per_1k=0.1,output_per_1k=0.2}"

# The tiny config, by hand (heuristic tokenizer: ceil(chars / 4), + 4 per message, + 3 per request):
#   q1 "What is 2+2?"   12 chars -> 3 tokens -> 3 + 4 + 3 = 10 prompt tokens
#   q2 "What is 10+10?" 14 chars -> 4 tokens -> 3 + 4 + 4 = 11 prompt tokens
# 2 samples each: 4 calls, 2 x (10 + 11) = 42 input tokens, 4 x max_tokens 10 = 40 output tokens.
TINY = """
name = "tiny"
seed = 1
samples = 2

[[datasets]]
name = "sums"
cases = [
  { id = "q1", fields = { question = "What is 2+2?" }, expected = "4" },
  { id = "q2", fields = { question = "What is 10+10?" }, expected = "20" },
]

[[models]]
name = "m"
model = "fake-m"
[models.params]
max_tokens = 10

[[prompts]]
name = "p"
template = "{{ question }}"

[parser]
name = "number"

[runtime]
max_concurrent_tasks = 3
"""
TINY_PRICE = "runtime.model_prices.m={input_per_1k=1.0,output_per_1k=2.0}"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY, encoding="utf-8")
    return config


# --- the tiny config, by hand --------------------------------------------------------------------


def test_tiny_json_matches_the_hand_computation(tiny: Path, invoke: Invoke) -> None:
    data = output_json(invoke("estimate", tiny, "--json"))

    assert (data["name"], data["trials"], data["model_calls"]) == ("tiny", 4, 4)
    assert data["stages"] == {"generate": 4, "parse": 4, "score": 4}
    assert data["generation"] == {
        "input_tokens": 42,
        "output_tokens": 40,
        "models": [
            {
                "name": "m",
                "provider": "fake",
                "model_calls": 4,
                "input_tokens": 42,
                "output_tokens": 40,
                "cost": None,
            }
        ],
    }
    assert data["judge"] is None
    assert (data["retry_tokens"], data["estimated_total_tokens"]) == (0, 82)
    assert data["cost"] == {"total": None, "unpriced_models": ["m"]}
    # 4 calls, 3 at a time: 2 waves of the assumed 2 s.
    assert data["time"] == {"duration_s": 4.0, "limited_by": "concurrency"}
    assert any(note.startswith("judge:") for note in data["notes"])


def test_tiny_with_price_rate_limit_and_retries(tiny: Path, invoke: Invoke) -> None:
    data = output_json(
        invoke(
            "estimate",
            tiny,
            "--json",
            "--set",
            TINY_PRICE,
            "--set",
            "runtime.provider_rate_limits.fake={requests_per_minute=2}",
            "--retry-allowance",
            "0.5",
        )
    )

    # (42 x 1.0 + 40 x 2.0) / 1000 = 0.122, plus half again for retries.
    assert data["generation"]["models"][0]["cost"] == pytest.approx(0.183)
    assert data["cost"] == {"total": pytest.approx(0.183), "unpriced_models": []}
    assert (data["retry_tokens"], data["estimated_total_tokens"]) == (41, 123)  # ceil(82 / 2)
    # 6 calls at 2 per minute.
    assert data["time"] == {"duration_s": pytest.approx(180.0), "limited_by": "rate_limits"}
    assert data["assumptions"]["retry_allowance"] == 0.5
    assert data["assumptions"]["prices"] == {"m": {"input_per_1k": 1.0, "output_per_1k": 2.0}}
    assert data["assumptions"]["rate_limits"] == {
        "fake": {"requests_per_minute": 2.0, "tokens_per_minute": None}
    }


def test_tiny_output_and_latency_assumptions(tiny: Path, invoke: Invoke) -> None:
    data = output_json(
        invoke(
            "estimate",
            tiny,
            "--json",
            "--set",
            "runtime.assumed_output_tokens=6",
            "--set",
            "runtime.assumed_latency_s=0.5",
            "--set",
            "runtime.provider_rate_limits.fake={tokens_per_minute=33}",
        )
    )

    assert data["generation"]["output_tokens"] == 24
    assert data["estimated_total_tokens"] == 66
    assert data["time"] == {"duration_s": pytest.approx(120.0), "limited_by": "rate_limits"}
    assert data["assumptions"]["output_tokens"]["assumed_output_tokens"] == 6
    assert data["assumptions"]["assumed_latency_s"] == 0.5


def test_tiny_table(tiny: Path, invoke: Invoke) -> None:
    result = invoke("estimate", tiny, "--set", TINY_PRICE)

    assert result.exit_code == 0, result.output
    lines = trimmed(result.stdout).splitlines()
    assert lines[0].startswith("run_id ")
    assert lines[1:] == [
        "tiny · 4 trials · stages: generate 4 model calls · parse 4 trials · score 4 trials",
        "┏━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━┓",
        "┃ model ┃ provider ┃ model calls ┃ input tokens ┃ output tokens ┃   cost ┃",
        "┡━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━┩",
        "│ m     │ fake     │           4 │           42 │            40 │ 0.1220 │",
        "├───────┼──────────┼─────────────┼──────────────┼───────────────┼────────┤",
        "│ total │          │           4 │           42 │            40 │ 0.1220 │",
        "└───────┴──────────┴─────────────┴──────────────┴───────────────┴────────┘",
        "judge: none (the experiment has no [[judges]])",
        "tokens: 42 input + 40 output + 0 retry allowance = 82 estimated in total",
        "cost: 0.1220 (runtime.model_prices, retry allowance included)",
        "time: at least 4.0s (limited by concurrency: 3 calls at once; 2s per call)",
        "assumptions:",
        "  tokenizer: heuristic-chars/4-v1: ceil(characters / 4) per message, plus 4 per message "
        "and 3 per request",
        "  output: each call's output is its model's params.max_tokens "
        "(runtime.assumed_output_tokens)",
        "  retries: 0% more calls (--retry-allowance)",
        "  latency: 2s per call (runtime.assumed_latency_s)",
    ]


# --- the demo ------------------------------------------------------------------------------------


def test_demo_json_without_prices(demo: Path, invoke: Invoke) -> None:
    data = output_json(invoke("estimate", demo, "--json"))
    plan = output_json(invoke("plan", demo, "--no-save", "--json"))

    assert data["run_id"] == plan["run_id"]
    assert (data["trials"], data["model_calls"]) == (TRIALS, TRIALS)
    assert data["stages"] == plan["stages"]
    models = data["generation"]["models"]
    assert [(m["name"], m["provider"], m["model_calls"]) for m in models] == [
        ("strong", "fake", 144),
        ("weak", "fake", 144),
    ]
    assert [m["output_tokens"] for m in models] == [144 * 32, 144 * 32]  # max_tokens = 32
    assert data["generation"]["input_tokens"] == sum(m["input_tokens"] for m in models)
    assert data["estimated_total_tokens"] == (
        data["generation"]["input_tokens"] + data["generation"]["output_tokens"]
    )
    assert data["judge"] is None
    assert data["cost"] == {"total": None, "unpriced_models": ["strong", "weak"]}
    # 288 calls, 16 at a time (the demo's max_concurrent_tasks): 18 waves of 2 s.
    assert data["time"] == {"duration_s": 36.0, "limited_by": "concurrency"}
    assumptions = data["assumptions"]
    assert assumptions["tokenizer"]["name"] == "heuristic-chars/4-v1"
    assert "ceil(characters / 4)" in assumptions["tokenizer"]["description"]
    assert assumptions["output_tokens"]["assumed_output_tokens"] is None
    assert (assumptions["retry_allowance"], assumptions["assumed_latency_s"]) == (0.0, 2.0)
    assert assumptions["concurrency"] == {
        "max_concurrent_tasks": 16,
        "generate": None,
        "providers": {},
    }
    assert (assumptions["prices"], assumptions["rate_limits"]) == ({}, {})


def test_demo_json_with_prices_and_rate_limits(demo: Path, invoke: Invoke) -> None:
    one = output_json(invoke("estimate", demo, "--json", "--set", STRONG_PRICE))
    both = output_json(
        invoke(
            "estimate",
            demo,
            "--json",
            "--set",
            STRONG_PRICE,
            "--set",
            WEAK_PRICE,
            "--set",
            "runtime.provider_rate_limits.fake={requests_per_minute=60}",
        )
    )

    strong, weak = one["generation"]["models"]
    strong_cost = (strong["input_tokens"] * 0.5 + strong["output_tokens"] * 1.5) / 1000
    assert strong["cost"] == pytest.approx(strong_cost)
    assert weak["cost"] is None
    assert one["cost"] == {"total": None, "unpriced_models": ["weak"]}
    weak_cost = (weak["input_tokens"] * 0.1 + weak["output_tokens"] * 0.2) / 1000
    assert both["cost"] == {"total": pytest.approx(strong_cost + weak_cost), "unpriced_models": []}
    # 288 calls at 60 per minute, slower than 18 waves of 2 s.
    assert both["time"] == {"duration_s": pytest.approx(288.0), "limited_by": "rate_limits"}
    assert one["run_id"] == both["run_id"]  # prices and limits are runtime: same run


def test_demo_table_names_each_model_and_the_totals(demo: Path, invoke: Invoke) -> None:
    plain = invoke("estimate", demo)
    priced = invoke(
        "estimate",
        demo,
        "--set",
        STRONG_PRICE,
        "--set",
        "runtime.provider_rate_limits.fake={requests_per_minute=60}",
    )

    assert plain.exit_code == 0, plain.output
    assert priced.exit_code == 0, priced.output
    text = trimmed(plain.stdout)
    assert "demo-arithmetic · 288 trials · stages: generate 288 model calls" in text
    assert "│ strong │ fake     │         144 │        6,762 │         4,608 │    — │" in text
    assert "│ total  │          │         288 │       13,524 │         9,216 │    — │" in text
    assert "cost: not estimated (no runtime.model_prices for these models)" in text
    assert "time: at least 36.0s (limited by concurrency: 16 calls at once; 2s per call)" in text
    priced_text = trimmed(priced.stdout)
    strong = "│ strong │ fake     │         144 │        6,762 │         4,608 │ 10.2930 │"
    assert strong in priced_text
    assert "cost: no total; no price for weak (set runtime.model_prices.<model>)" in priced_text
    assert "time: at least 4m 48s (limited by provider_rate_limits)" in priced_text


# --- no model call, no store ---------------------------------------------------------------------


@pytest.mark.usefixtures("tripwires")
def test_estimate_calls_no_model_and_opens_no_store(
    demo: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo.parent)
    before = sorted(demo.parent.rglob("*"))

    table = invoke("estimate", demo)
    data = output_json(invoke("estimate", demo, "--json", "--set", STRONG_PRICE))

    assert table.exit_code == 0, table.output
    assert data["model_calls"] == TRIALS
    assert sorted(demo.parent.rglob("*")) == before
    assert not (demo.parent / "themis.duckdb").exists()


@pytest.mark.usefixtures("tripwires")
def test_the_tripwires_catch_a_model_and_a_store(demo: Path, invoke: Invoke, store: Path) -> None:
    ran = invoke("run", demo, "--store", store)
    planned = invoke("plan", demo, "--store", store)

    assert isinstance(ran.exception, Tripwire)
    assert isinstance(planned.exception, Tripwire)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["missing.toml"], "missing.toml: file not found"),
        (["DEMO", "--set", "runtime.assumed_latency_s=-1"], "runtime.assumed_latency_s"),
        (["DEMO", "--set", "runtime.model_prices.strong={input_per_1k=1}"], "output_per_1k"),
        (["DEMO", "--retry-allowance", "-0.5"], "retry_allowance: must be >= 0"),
        (["DEMO", "--retry-allowance", "inf"], "retry_allowance: must be a finite number"),
    ],
)
def test_errors_are_one_line(demo: Path, invoke: Invoke, args: list[str], expected: str) -> None:
    result = invoke("estimate", *[str(demo) if arg == "DEMO" else arg for arg in args])

    assert expected in one_error_line(result)

"""Every misconfiguration is refused when the config compiles: one `error:` line naming the file,
key and value (with a did-you-mean for a misspelled name), exit 2, no traceback, no store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Invoke, one_error_line

PROMPT = 'template = "Answer with a number only.\\n{{ question }}"'
PARSER = 'name = "number"      # the answer number (docs/reference/parsers-and-metrics.md)'

# (what is changed in examples/demo.toml: old text → new text, or an appended table; the error)
CASES = {
    "model_prices key": (
        None,
        "[runtime.model_prices.fake-stronk]\ninput_per_1k = 1\noutput_per_1k = 1\n"
        "[runtime.model_prices.strong]\ninput_per_1k = 1\noutput_per_1k = 1",
        "runtime.model_prices: no model is named 'fake-stronk' (did you mean 'fake-strong'?)",
    ),
    "context_windows key": (
        None,
        "[runtime.context_windows]\nstronk = 2048",
        "runtime.context_windows: no model is named 'stronk' (did you mean 'strong'?)",
    ),
    "provider_rate_limits key": (
        None,
        "[runtime.provider_rate_limits.faek]\nrequests_per_minute = 60",
        "runtime.provider_rate_limits: no provider is named 'faek' (did you mean 'fake'?)",
    ),
    "provider_concurrency key": (
        None,
        "[runtime.provider_concurrency]\nopenai = 4",
        "runtime.provider_concurrency: no provider is named 'openai' (known: 'fake')",
    ),
    "stage_concurrency key": (
        None,
        "[runtime.stage_concurrency]\ngenrate = 4",
        "runtime.stage_concurrency.genrate: no stage is named 'genrate' (did you mean 'generate'?)",
    ),
    "expected_field no row has": (
        ('expected_field = "answer"', 'expected_field = "answr"'),
        None,
        "datasets[0].expected_field: no column of data/arithmetic.jsonl is named 'answr' "
        "(did you mean 'answer'?)",
    ),
    "undefined template variable": (
        (PROMPT, 'template = "{{ questoin }}"'),
        None,
        "prompts[0]: prompt 'direct': no field of case 'arith-01' of dataset 'arithmetic' is "
        "named 'questoin' (did you mean 'question'?)",
    ),
    "template that divides by zero": (
        (PROMPT, 'template = "{{ question }} {{ 1 // 0 }}"'),
        None,
        "prompts[0]: prompt 'direct', case 'arith-01': ZeroDivisionError: integer division or "
        "modulo by zero",
    ),
    "attribute error in a template": (
        (PROMPT, 'template = "{{ question.text.upper() }}"'),
        None,
        "prompts[0]: prompt 'direct', case 'arith-01': 'str object' has no attribute 'text'",
    ),
    "template that renders empty": (
        (PROMPT, "template = \"{{ question if id == 'x' else '' }}\""),
        None,
        "prompts[0]: prompt 'direct': its template renders empty for case 'arith-01' of "
        "dataset 'arithmetic'",
    ),
    "invalid regex": (
        (PARSER, 'name = "regex"\npattern = "answer: (\\\\d+"'),
        None,
        "parser.pattern: invalid regular expression 'answer: (\\\\d+': missing ), "
        "unterminated subpattern at position 8",
    ),
    "group the pattern lacks": (
        (PARSER, 'name = "regex"\npattern = "answer: (\\\\d+)"\ngroup = 2'),
        None,
        "parser.group: pattern 'answer: (\\\\d+)' has 1 group(s); there is no group 2",
    ),
    "regex parser without a pattern": (
        (PARSER, 'name = "regex"'),
        None,
        "parser.pattern: missing: the 'regex' parser needs a pattern",
    ),
    "pattern the parser ignores": (
        (PARSER, 'name = "number"\npattern = "(\\\\d+)"'),
        None,
        "parser.pattern: the 'number' parser does not use it (got '(\\\\d+)'); only 'regex' does",
    ),
    "negative temperature": (
        ("temperature = 0.0", "temperature = -0.5"),
        None,
        "models[0].params.temperature: must be >= 0, got -0.5",
    ),
    "top_p above 1": (
        ("temperature = 0.0", "temperature = 0.0\ntop_p = 1.5"),
        None,
        "models[0].params.top_p: must be within (0, 1], got 1.5",
    ),
    "absurd samples": (
        ("samples = 3 ", "samples = 1000000000 "),
        None,
        "samples: must be at most 10,000, got 1,000,000,000",
    ),
    "negative tolerance": (
        ('name = "numeric_match"', 'name = "numeric_match"\ntolerance = -0.1'),
        None,
        "metrics[0].tolerance: must be >= 0, got -0.1",
    ),
}


def misconfigured(demo: Path, name: str) -> Path:
    edit, table, _ = CASES[name]
    text = demo.read_text(encoding="utf-8")
    if edit is not None:
        old, new = edit
        assert old in text, old
        text = text.replace(old, new, 1)
    if table is not None:
        text += "\n" + table + "\n"
    demo.write_text(text, encoding="utf-8")
    return demo


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_misconfiguration_is_refused_before_a_store_exists(
    demo: Path, store: Path, invoke: Invoke, name: str, command: str
) -> None:
    config = misconfigured(demo, name)
    line = one_error_line(invoke(command, config, "--store", store))
    assert line == f"error: {config}: {CASES[name][2]}"
    assert not store.exists()

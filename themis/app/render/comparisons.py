"""A paired comparison as people read it: a rich table, JSON, Markdown or LaTeX.

Every format carries the same cells and the same notes: which side is subtracted from which,
what the interval and the tests are, the resampling seed, and what could not be paired.
"""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from themis.core.comparison import Comparison, PairedComparison

COLUMNS = (
    "group", "metric", "n", "only A", "only B", "A", "B", "B − A", "95% CI", "test", "p",
    "p (Holm)", "MDE",
)  # fmt: skip
_RIGHT = {"n", "only A", "only B", "A", "B", "B − A", "95% CI", "p", "p (Holm)", "MDE"}
_TESTS = {
    "mcnemar-exact": "McNemar exact",
    "sign-flip": "sign-flip",
    "none": "—",
}


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    value = round(value, 3) + 0.0  # never "-0.000"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2e}" if value < 0.001 else f"{value:.3f}"


def cells(row: PairedComparison) -> list[str]:
    """One row's cells, in `COLUMNS` order."""
    ci = (
        "—"
        if row.ci_low is None or row.ci_high is None
        else f"[{_number(row.ci_low, signed=True)}, {_number(row.ci_high, signed=True)}]"
    )
    return [
        row.group,
        row.metric,
        str(row.n),
        str(row.only_a),
        str(row.only_b),
        _number(row.mean_a),
        _number(row.mean_b),
        _number(row.delta, signed=True),
        ci,
        _TESTS.get(row.test, row.test),
        _p(row.p_value),
        _p(row.p_holm),
        _number(row.mde),
    ]


def notes(comparison: Comparison) -> list[str]:
    """What every output says below the table: the method, and what was left unpaired."""
    resampling = comparison.resampling
    unpaired = sum(row.only_a + row.only_b for row in comparison.rows)
    lines = [
        f"B − A with A = {comparison.a}, B = {comparison.b}, paired by {comparison.paired_by}; "
        "each side's case value is the mean of its samples (a failed generation scores 0).",
        "95% CI: Student-t over the case differences (clustered by case); "
        f"bootstrap: percentile over cases, {resampling.bootstrap_rounds} rounds, "
        f"seed {resampling.seed} (JSON).",
        "p: McNemar exact (one 0/1 sample per case) or sign-flip permutation over case "
        f"differences ({resampling.permutation_rounds} rounds beyond 12 cases, seed "
        f"{resampling.seed}); Holm across the {len(comparison.rows)} rows; "
        "MDE: the smallest true difference found with 80% power at α = 0.05.",
        f"unpaired cases (scored on one side only, left out): {unpaired}",
    ]
    lines.extend(f"not compared: {item}" for item in comparison.unmatched)
    return lines


def comparison_table(comparison: Comparison) -> RenderableType:
    title = f"compare · A {comparison.a} · B {comparison.b}"
    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="right" if column in _RIGHT else "left")
    for row in comparison.rows:
        table.add_row(*cells(row))
    return Group(table, *(Text(line) for line in notes(comparison)))


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    resampling = comparison.resampling
    return {
        "a": comparison.a,
        "b": comparison.b,
        "paired_by": comparison.paired_by,
        "difference": "b - a",
        "resampling": {
            "seed": resampling.seed,
            "bootstrap_rounds": resampling.bootstrap_rounds,
            "permutation_rounds": resampling.permutation_rounds,
        },
        "rows": [
            {
                "group": row.group,
                "metric": row.metric,
                "n": row.n,
                "only_a": row.only_a,
                "only_b": row.only_b,
                "mean_a": row.mean_a,
                "mean_b": row.mean_b,
                "delta": row.delta,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "ci_method": row.ci_method,
                "bootstrap_low": row.bootstrap_low,
                "bootstrap_high": row.bootstrap_high,
                "test": row.test,
                "discordant": None if row.discordant is None else list(row.discordant),
                "p_value": row.p_value,
                "p_holm": row.p_holm,
                "mde": row.mde,
            }
            for row in comparison.rows
        ],
        "unpaired_cases": sum(row.only_a + row.only_b for row in comparison.rows),
        "unmatched": list(comparison.unmatched),
    }


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def comparison_markdown(comparison: Comparison) -> str:
    lines = [
        f"**compare** · A `{comparison.a}` · B `{comparison.b}`",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if column in _RIGHT else "---" for column in COLUMNS) + "|",
    ]
    lines.extend(
        "| " + " | ".join(_markdown_cell(cell) for cell in cells(row)) + " |"
        for row in comparison.rows
    )
    lines.append("")
    lines.extend(f"- {_markdown_cell(line)}" for line in notes(comparison))
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "−": "$-$", "—": "--", "α": r"$\alpha$", "Δ": r"$\Delta$",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped (and −, —, α typeset)."""
    return "".join(_LATEX_SPECIAL.get(character, character) for character in text)


def comparison_latex(comparison: Comparison) -> str:
    """A booktabs `table` environment with the notes as its caption."""
    spec = "".join("r" if column in _RIGHT else "l" for column in COLUMNS)
    lines = [
        r"\begin{table}",
        r"\centering",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(column) for column in COLUMNS) + r" \\",
        r"\midrule",
    ]
    lines.extend(
        " & ".join(latex_escape(cell) for cell in cells(row)) + r" \\" for row in comparison.rows
    )
    lines.extend(
        [
            r"\bottomrule",
            r"\end{tabular}",
            r"\caption{" + latex_escape(" ".join(notes(comparison))) + "}",
            r"\end{table}",
        ]
    )
    return "\n".join(lines) + "\n"


def comparison_text_json(comparison: Comparison) -> str:
    return json.dumps(comparison_json(comparison), indent=2, ensure_ascii=False) + "\n"


def comparison_text_table(comparison: Comparison) -> str:
    """The table as plain text (for `--output`), 160 columns wide."""
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(comparison_table(comparison))
    return console.export_text()

"""Dataset loaders the shipped benchmark configs use (examples/benchmarks/), registered and
named like any plugin (`themis.app.config.benchmarks:multiple_choice`).

`multiple_choice` turns a multiple-choice row whose answer is an index (HellaSwag's `endings`,
TruthfulQA-MC1's `choices`, `expected_index`) into a case the `choice` parser and `exact_match`
score: its options rendered as `A. ...` lines (`options`) and its expected letter (`expected`).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from themis.app.config.datasets import jsonl_rows
from themis.core.plugins import plugin
from themis.core.validation import MAX_CHOICES

__all__ = ["multiple_choice"]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@plugin("dataset_loader", version="1")
def multiple_choice(
    path: str | None, *, choices_field: str = "choices", index_field: str = "expected_index"
) -> list[dict[str, Any]]:
    """The rows of the JSONL file at `path`, each with `options` and `expected` added."""
    if path is None:
        raise ValueError("give the JSONL file of the questions as path")
    file = Path(path)
    data = file.read_bytes()
    text = (gzip.decompress(data) if file.suffix == ".gz" else data).decode("utf-8-sig")
    rows = []
    for where, row in jsonl_rows(text, file):
        choices, index = row.get(choices_field), row.get(index_field)
        if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
            raise ValueError(f"{where}: {choices_field!r} is not a list of 2 to 26 options")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(choices):
            raise ValueError(f"{where}: {index_field!r} is not an index of its options")
        options = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))
        rows.append({**row, "options": options, "expected": LETTERS[index]})
    return rows

"""Two modules of one name in different places of `themis` are the same concept at two levels
(a port and its adapters, the pure part and the shell around it), and the docstring of each
names another of them, so a reader finds the rest. Two concepts sharing a name would mislead."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

THEMIS = Path(__file__).resolve().parents[1] / "themis"


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(THEMIS.parent).with_suffix("").parts)


def test_every_module_sharing_its_name_names_another_of_them() -> None:
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(THEMIS.rglob("*.py")):
        if path.name != "__init__.py":
            by_name[path.name].append(path)
    silent = []
    for paths in by_name.values():
        for path in paths:
            docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
            others = [_dotted(other) for other in paths if other != path]
            if others and not any(other in docstring for other in others):
                silent.append(f"{_dotted(path)} (names none of {', '.join(others)})")
    assert silent == []

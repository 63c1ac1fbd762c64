"""Research code as plugins: modules written into a temporary directory on `sys.path`."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

Write = Callable[..., str]


def lab_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> Write:
    """`write(name, version="1")`: module `name`, `source` with `{version}` filled in,
    importable from `tmp_path`; returns the name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, version: str = "1") -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source.format(version=version)))
        return name

    return write

"""Every code block of README.md and docs/ runs as a reader would run it, so no example can rot.

The conventions (also in docs/development.md):

- ```python blocks are executed in order, one namespace per page, with the current directory a
  fresh temporary directory holding a copy of `examples/` (so `examples/...` paths work and
  `themis.duckdb` is a store of the page's own). A ```text block right after one (nothing but
  blank lines between) is what it prints, and must match it line for line;
- in ```console blocks each line starting with `$ themis ` is run in-process in that directory
  (a trailing backslash continues it); it must exit 0, or 2 when the output shown under it
  starts with `error:`, or N when its comment says `# ... exit status N`. Other `$` lines
  (`make demo`) are not run;
- ```sql blocks are run with a plain DuckDB client on the page's `themis.duckdb`, read-only
  (after the console lines above them made it): the query must return at least one row, and
  a ```text block right under one holds its rows, values separated by blanks;
- ```toml, ```text, ```json and other named blocks are not run; a bare or ```sh block is refused,
  since it would look runnable without being run;
- `<!-- docs-test: skip -->` on the line before a block skips it (e.g. it needs a real server).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import textwrap
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pytest
from typer.testing import CliRunner

from scripts.docs_reference import cli_app

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SKIP = "<!-- docs-test: skip -->"
REFUSED_LANGUAGES = {"", "sh", "bash", "shell", "zsh"}
_EXIT_STATUS = re.compile(r"#.*\bexit status (\d+)")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
# The CLI's environment in every example: no forced colour or terminal, a fixed width.
CLI_ENV: dict[str, str | None] = {"COLUMNS": "160", "FORCE_COLOR": None, "NO_COLOR": None}


@attrs.frozen
class Block:
    """One fenced code block: its language, its lines, where it starts (1-based), whether it is
    to be skipped, and whether it follows the previous block with only blank lines between."""

    lang: str
    lines: tuple[str, ...]
    line: int
    skip: bool
    follows: bool = False


def code_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    previous_end: int | None = None
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], opening["indent"]
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        before = [line.strip() for line in lines[:index] if line.strip()]
        body = (
            textwrap.dedent("\n".join(lines[index + 1 : end])).splitlines()
            if indent
            else lines[index + 1 : end]
        )
        skip = bool(before) and before[-1] == SKIP
        follows = previous_end is not None and not any(
            line.strip() for line in lines[previous_end + 1 : index]
        )
        blocks.append(Block(opening["lang"], tuple(body), index + 1, skip, follows))
        previous_end = end
        index = end + 1
    return blocks


def commands(block: Block) -> list[tuple[int, list[str], int]]:
    """Each `$ themis` command of a console block: its line, its arguments, its exit status."""
    found: list[tuple[int, list[str], int]] = []
    lines = list(block.lines)
    index = 0
    while index < len(lines):
        start, line = index, lines[index]
        index += 1
        if not line.startswith("$ themis "):
            continue
        while line.endswith("\\") and index < len(lines):
            line = line[:-1] + " " + lines[index].strip()
            index += 1
        shown = lines[index] if index < len(lines) else ""
        arguments = shlex.split(line[len("$ themis ") :], comments=True)
        stated = _EXIT_STATUS.search(line)
        status = int(stated[1]) if stated else 2 if shown.startswith("error:") else 0
        found.append((block.line + 1 + start, arguments, status))
    return found


def _page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_code_block_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    name = _page_id(page)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    runner = CliRunner()
    app = cli_app()
    blocks = code_blocks(page.read_text(encoding="utf-8"))
    for index, block in enumerate(blocks):
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        where = f"{name}:{block.line}"
        assert block.lang not in REFUSED_LANGUAGES, (
            f"{where}: a ```{block.lang} block is never run; use ```console with `$ themis ...` "
            "lines, or ```text for output"
        )
        if block.skip:
            continue
        if block.lang == "python":
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile("\n".join(block.lines) + "\n", where, "exec"), namespace)
            if following is not None and following.lang == "text" and following.follows:
                shown = [line.rstrip() for line in following.lines]
                assert [line.rstrip() for line in printed.getvalue().splitlines()] == shown, (
                    f"{where}: prints something else than the text block under it"
                )
        elif block.lang == "sql":
            rows = _run_sql(where, "\n".join(block.lines))
            if following is not None and following.lang == "text" and following.follows:
                shown = [line.split() for line in following.lines if line.strip()]
                assert [[str(value) for value in row] for row in rows] == shown, (
                    f"{where}: returns other rows than the text block under it"
                )
        elif block.lang == "console":
            for line, arguments, expected in commands(block):
                result = runner.invoke(app, arguments, env=CLI_ENV)
                assert result.exit_code == expected, (
                    f"{name}:{line}: `themis {' '.join(arguments)}` exited {result.exit_code}, "
                    f"expected {expected} (a command meant to end otherwise says so in a comment: "
                    f"`$ themis ...  # exit status N`)\n{result.output}{result.exception or ''}"
                )


def _run_sql(where: str, text: str) -> list[tuple[Any, ...]]:
    """Run a ```sql block as any DuckDB client would, on the page's store, read-only."""
    with duckdb.connect("themis.duckdb", read_only=True) as con:
        rows: list[tuple[Any, ...]] = con.execute(text).fetchall()
    assert rows, f"{where}: the query returned no row"
    return rows


def test_the_readme_stays_short() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_blocks_commands_and_skips_are_found() -> None:
    text = "\n".join(
        [
            "# Page",
            "```python",
            "x = 1",
            "```",
            SKIP,
            "```console",
            "$ themis run a.toml",
            "```",
            "```console",
            "$ make demo",
            "$ themis run examples/demo.toml \\",
            "    --set seed=7   # a comment",
            "$ themis report abcd --store 'a b.duckdb'",
            "error: no run 'abcd'",
            "$ themis run examples/demo.toml  # pauses: exit status 3",
            "```",
            "",
            "```text",
            "shown",
            "```",
        ]
    )
    python, skipped, console, shown = code_blocks(text)

    assert (python.lang, python.lines, python.line, python.skip) == ("python", ("x = 1",), 2, False)
    assert skipped.skip
    assert not console.skip
    assert (skipped.follows, console.follows, shown.follows) == (False, True, True)
    assert commands(console) == [
        (11, ["run", "examples/demo.toml", "--set", "seed=7"], 0),
        (13, ["report", "abcd", "--store", "a b.duckdb"], 2),
        (15, ["run", "examples/demo.toml"], 3),
    ]
    assert os.sep not in _page_id(REPO / "README.md")

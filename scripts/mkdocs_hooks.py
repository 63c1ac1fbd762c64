"""mkdocs hooks (`hooks:` in mkdocs.yml): generated reference sections, the ADRs, a complete nav.

- `<!-- generated: NAME -->` lines are replaced by `scripts/docs_reference.GENERATORS[NAME]()`.
- Every `ADRs/*.md` at the repository root becomes a page under `explanation/adrs/`, with an
  index; a link written for the repository (`../../ADRs/0002-identity.md`, which works when
  the Markdown is read on its own) is pointed at that page.
- A page that the nav in mkdocs.yml does not list is appended to the section that lists its
  folder's pages, so a page added by a later change is never left out of the site.
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.docs_reference import GENERATORS, REPO

ADR_DIR = REPO / "ADRs"
ADR_PAGES = "explanation/adrs"
_MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.MULTILINE)
_ADR_LINK = re.compile(r"\]\((?:\.\./)+ADRs/([^)#\s]*)(#[^)\s]*)?\)")
_TITLE = re.compile(r"^# (.+)$", re.MULTILINE)
_STATUS = re.compile(r"^Status: (.+)$", re.MULTILINE)


def _adr_index() -> str:
    lines = [
        "# Architecture decision records",
        "",
        "Each decision that shaped Themis, with its context, the alternatives rejected and its",
        "consequences. They live in `ADRs/` at the repository root.",
        "",
        "| record | status |",
        "|---|---|",
    ]
    for path in sorted(ADR_DIR.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title = _TITLE.search(text)
        status = _STATUS.search(text)
        lines.append(
            f"| [{title.group(1) if title else path.stem}]({path.name}) "
            f"| {status.group(1) if status else ''} |"
        )
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the ADRs and their index as pages, then list every page in the nav."""
    files.append(File.generated(config, f"{ADR_PAGES}/index.md", content=_adr_index()))
    for path in sorted(ADR_DIR.glob("*.md")):
        files.append(File.generated(config, f"{ADR_PAGES}/{path.name}", abs_src_path=str(path)))
    _complete_nav(config["nav"], [file.src_uri for file in files.documentation_pages()])
    return files


def _complete_nav(nav: list[Any], pages: list[str]) -> None:
    """Append each page `nav` does not list to the list that holds its folder's pages."""
    lists: dict[str, list[Any]] = {}  # folder -> the nav list holding a page of that folder
    listed: set[str] = set()

    def visit(items: list[Any]) -> None:
        for item in items:
            for value in item.values() if isinstance(item, dict) else [item]:
                if isinstance(value, list):
                    visit(value)
                elif isinstance(value, str):
                    listed.add(value)
                    lists.setdefault(posixpath.dirname(value), items)

    visit(nav)
    for page in pages:
        folder = posixpath.dirname(page)
        while folder and folder not in lists:
            folder = posixpath.dirname(folder)
        if page not in listed and folder:  # a top-level page stays reported as missing
            lists[folder].append(page)


def _replace_marker(match: re.Match[str]) -> str:
    name = match.group(1)
    if name not in GENERATORS:
        raise KeyError(f"no generator {name!r} (known: {', '.join(sorted(GENERATORS))})")
    return GENERATORS[name]()


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill generated sections in and point repository links to ADRs at their pages."""
    here = posixpath.dirname(page.file.src_uri)

    def adr_link(match: re.Match[str]) -> str:
        target = f"{ADR_PAGES}/{match.group(1) or 'index.md'}"
        return f"]({posixpath.relpath(target, here or '.')}{match.group(2) or ''})"

    return _ADR_LINK.sub(adr_link, _MARKER.sub(_replace_marker, markdown))

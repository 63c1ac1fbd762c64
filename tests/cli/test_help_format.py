"""The stand-ins `help_format` gives typer's help formatter for Markdown and rich tracebacks
behave as the real classes, which they import on first use."""

from __future__ import annotations

import subprocess
import sys

from themis.app.cli.help_format import _stand_in


def test_a_stand_in_builds_the_real_class_and_reaches_its_class_methods() -> None:
    markdown = _stand_in("rich.markdown", "Markdown")
    traceback = _stand_in("rich.traceback", "Traceback")
    from rich.markdown import Markdown
    from rich.traceback import Traceback

    assert isinstance(markdown("# title"), Markdown)
    try:
        raise ValueError("boom")
    except ValueError as error:
        shown = traceback.from_exception(type(error), error, error.__traceback__)
    assert isinstance(shown, Traceback)


def test_typer_formats_help_without_markdown_and_then_markdown_is_the_real_one() -> None:
    script = (
        "import sys\n"
        "from themis.app.cli.help_format import load_rich_utils\n"
        "load_rich_utils()\n"
        "import typer.rich_utils\n"
        "assert 'rich.markdown' not in sys.modules and 'rich.traceback' not in sys.modules\n"
        "from rich.markdown import Markdown\n"
        "assert type(Markdown).__name__ == 'type', Markdown\n"
        "assert isinstance(typer.rich_utils.Markdown('x'), Markdown)\n"
        "print('ok')\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert shown.stdout.strip() == "ok", shown.stderr

"""Typer's rich help, without loading the rich modules Themis's help never uses.

`typer.rich_utils` formats every `--help`; at import it also loads `rich.markdown` (with
markdown-it) for `rich_markup_mode="markdown"` and `rich.traceback` (with `rich.pretty`) for
pretty exceptions. Themis uses neither, and the two imports are most of the cost of
`themis --help` (issue 12: ~0.1 s of its ~0.37 s). `load_rich_utils` imports typer's formatter
with those two names bound to stand-ins that load the real class on first use, so help looks
exactly as typer renders it, and anything that later asks for Markdown or a rich traceback
gets the real one.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# The modules `typer.rich_utils` imports for features Themis does not use, and the one name it
# takes from each.
_DEFERRED = (("rich.markdown", "Markdown"), ("rich.traceback", "Traceback"))


class _Deferred(type):
    """The class of a stand-in: attribute access (`Traceback.from_exception`) reaches the real
    class, imported then."""

    def __getattr__(cls, attribute: str) -> Any:
        return getattr(cls.real(), attribute)

    def real(cls) -> Any:
        module, name = cls.home
        return getattr(importlib.import_module(module), name)


def _stand_in(module: str, name: str) -> type:
    def construct(cls: _Deferred, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    return _Deferred(name, (), {"home": (module, name), "__new__": construct})


def load_rich_utils() -> None:
    """Import `typer.rich_utils` (once) without importing `rich.markdown` or `rich.traceback`."""
    if "typer.rich_utils" in sys.modules:
        return
    placed: dict[str, types.ModuleType] = {}
    for module, name in _DEFERRED:
        if module not in sys.modules:
            placeholder = types.ModuleType(module)
            setattr(placeholder, name, _stand_in(module, name))
            placed[module] = placeholder
    sys.modules.update(placed)
    try:
        import typer.rich_utils  # noqa: F401  (an import statement, so `-X importtime` logs it)
    finally:  # the real modules load normally from now on
        for module, placeholder in placed.items():
            if sys.modules.get(module) is placeholder:
                del sys.modules[module]

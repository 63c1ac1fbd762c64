"""Answers the store already holds: `themis run CONFIG` and `themis resume RUN` of a completed
run, from its compiled facts and checkpoint (`themis.app.usecases.compiled_cache`, ADR 0034).

Kept apart from `themis.app.api.experiment` so that such an answer imports neither the
execution engine nor the config loader. Callers pass the store they opened, and hand it on to
the full path when it cannot answer (no current entry, a stale one), so a command still opens
its store once; the full path says what is wrong, if anything is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from themis.app.usecases.compiled_cache import answer_complete, answer_config
from themis.app.usecases.stored import RunResult, resolve_run_id
from themis.app.wiring import StoreLike, opened_store
from themis.core.compiled_facts import CompiledFacts
from themis.core.errors import ThemisError
from themis.core.stages import Stage

__all__ = ["AnsweredRun", "answered_resume", "answered_run"]


class AnsweredRun:
    """A completed run answered from the store: nothing was compiled, folded or executed."""

    def __init__(self, facts: CompiledFacts, result: RunResult) -> None:
        self._facts = facts
        self._result = result

    @property
    def run_id(self) -> str:
        return self._facts.run_id

    @property
    def progress(self) -> str:
        """The progress display its runtime asks for."""
        return self._facts.progress

    @property
    def providers(self) -> set[str]:
        """The providers it calls: its models' and its judge models'."""
        return set(self._facts.providers)

    @property
    def notices(self) -> tuple[str, ...]:
        """What `themis run` of its config prints before executing (warnings, preflight)."""
        return self._facts.notices

    def execute(self, **_adapters: Any) -> RunResult:
        """The stored answer (no adapter is used: nothing runs)."""
        return self._result


def answered_resume(
    run_id: str, store: StoreLike, until_stage: Stage | None = None
) -> AnsweredRun | None:
    """`resume` of a completed run (id or unique prefix) from the store, else `None`."""
    try:
        with opened_store(store) as opened:
            answered = answer_complete(opened, resolve_run_id(opened, run_id), until_stage)
    except ThemisError:  # e.g. no such run: the full path says so
        return None
    return None if answered is None else AnsweredRun(*answered)


def answered_run(
    config: Path, overrides: Sequence[str], store: StoreLike, until_stage: Stage | None = None
) -> AnsweredRun | None:
    """`run` of `config` (with `overrides`) from the store, if it holds that config's run
    complete, else `None`."""
    try:
        with opened_store(store) as opened:
            answered = answer_config(opened, config, overrides, until_stage)
    except ThemisError:
        return None
    return None if answered is None else AnsweredRun(*answered)

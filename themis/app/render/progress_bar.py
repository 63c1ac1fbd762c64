"""A terminal progress bar: a telemetry observer that draws the `Progress` signals the
interpreter's counters give a few times a second.

The interpreter only bumps integers; this display reads them on its own schedule, so drawing
never sits on the trials' path. While calls wait (a Retry-After pause, an open breaker, a rate
limit), the bar says for what and until when.

Where no bar is drawn (stderr is a file or a pipe: a CI log; `themis worker`), `WaitNotices`
prints a line when a run starts a long wait, an open breaker or a Retry-After pause, so that a
run never waits in silence (ADR 0092); the short waits of a rate limit's pacing are not named.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from themis.app.render.runtime_controls import hold_text
from themis.core import telemetry
from themis.core.provider_state import ProviderHold


def waiting_text(holds: Sequence[ProviderHold]) -> str:
    """What the run waits for and until when (the hold that ends last), or nothing."""
    if not holds:
        return ""
    latest = max(holds, key=lambda hold: hold.until)
    more = f" (+{len(holds) - 1} more)" if len(holds) > 1 else ""
    return f"waiting: {hold_text(latest, clock=True)}{more}"


# The holds worth a line in a log: they stop every call to a provider for seconds to minutes.
_NOTICED = frozenset(("open", "pause"))
_NOTICE_EVERY_S = 10.0  # at most a line this often per provider and kind (a storm of 429s)


class WaitNotices:
    """A telemetry observer of `Progress` for a console without a bar: a line when a breaker
    opens or a Retry-After pause starts, then again for a later one of the same run, provider
    and kind once `_NOTICE_EVERY_S` seconds have passed; each line starts with `prefix`."""

    def __init__(self, console: Console, prefix: str = "") -> None:
        self._console = console
        self._prefix = prefix
        self._named: dict[tuple[str, str, str | None, str], tuple[float, float]] = {}

    def __call__(self, signal: telemetry.Signal) -> None:
        if isinstance(signal, telemetry.Progress):
            for hold in signal.holds:
                self.notice(signal.run_id, hold, signal.at)

    def notice(self, run_id: str, hold: ProviderHold, at: float) -> None:
        """Name `hold` of run `run_id`, seen at `at`, unless it is short or was as good as
        named already."""
        where = (run_id, hold.provider, hold.endpoint, hold.kind)
        named = self._named.get(where)
        if hold.kind not in _NOTICED or (
            named is not None and (hold.until <= named[0] or at - named[1] < _NOTICE_EVERY_S)
        ):
            return
        self._named[where] = (hold.until, at)
        line = f"{self._prefix}run {run_id[:12]}: waiting: {hold_text(hold, clock=True)}"
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)


class ProgressBar:
    """A rich bar of trials done, failures, rate and ETA; redrawn by each `Progress` signal."""

    def __init__(self, console: Console, description: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[waiting]}"),
            console=console,
            auto_refresh=False,
            transient=False,
        )
        self._task = self._progress.add_task(description, total=None, failed=0, rate="", waiting="")

    def __call__(self, signal: telemetry.Signal) -> None:
        """The observer: redraw on progress; every other signal is for other observers."""
        if isinstance(signal, telemetry.Progress):
            self.update(signal)

    def update(self, counts: telemetry.Progress) -> None:
        finished = counts.done + counts.failed
        speed = self._progress.tasks[0].speed
        rate = f"{speed:,.0f} trials/s" if speed else ""
        if counts.reduced:  # the reduce stage, after the trials: groups reduced so far
            rate = f"{counts.reduced:,} groups reduced"
        if counts.judge_calls:  # the judge stage, last: verdicts obtained or failed so far
            judged = counts.judged + counts.judge_failed
            rate = f"judge {judged:,}/{counts.judge_calls:,} verdicts"
            if counts.judge_failed:
                rate += f" ({counts.judge_failed:,} failed)"
        self._progress.update(
            self._task,
            total=counts.total,
            completed=finished,
            failed=counts.failed,
            rate=rate,
            waiting=waiting_text(counts.holds),
        )
        self._progress.refresh()

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

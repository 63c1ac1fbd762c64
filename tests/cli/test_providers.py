"""`themis providers list|clear`, and how shared Retry-After pauses show: when a run starts
under one, and in `inspect state`."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cli.conftest import EXAMPLES
from tests.cli.helpers import Invoke, output_json
from themis.adapters.live_progress import progress_directory
from themis.adapters.provider_state import FileProviderState
from themis.app.api.providers import clear_provider_holds
from themis.app.render.progress_bar import waiting_text
from themis.core.provider_state import ProviderHold, SharedProviderState, scope_key

LOCAL = scope_key("local", "http://127.0.0.1:9/v1")


def _pause(store: Path, key: str, seconds: float) -> float:
    now = time.time()
    until = now + seconds
    state = SharedProviderState(paused_until=until, updated_at=now, updated_by=4242)
    FileProviderState(Path(f"{store}.providers")).publish(key, state)
    return until


def test_list_and_clear(invoke: Invoke, store: Path) -> None:
    _pause(store, LOCAL, 300.0)

    listed = invoke("providers", "list", "--store", store)
    assert listed.exit_code == 0, listed.output
    assert "provider 'local' (http://127.0.0.1:9/v1): paused by a server's Retry-After until" in (
        listed.stdout
    )
    assert "(published by PID 4242)" in listed.stdout
    (hold,) = output_json(invoke("providers", "list", "--store", store, "--json"))["holds"]
    assert (hold["provider"], hold["endpoint"], hold["kind"]) == (
        "local",
        "http://127.0.0.1:9/v1",
        "pause",
    )
    assert hold["until"].endswith(" UTC")

    cleared = invoke("providers", "clear", "--store", store, "--provider", "local")
    assert cleared.exit_code == 0, cleared.output
    assert cleared.stdout.strip() == f"cleared {LOCAL}"
    assert "no provider is paused" in invoke("providers", "list", "--store", store).stdout
    assert invoke("providers", "clear", "--store", store).stdout.strip() == "nothing to clear"


@contextmanager
def _cleared_once_running(store: Path, provider: str) -> Iterator[None]:
    """Clear `provider`'s shared holds once a run on `store` executes (its live progress file
    is there), from another thread, as `themis providers clear` would from another shell."""
    progress = progress_directory(store)

    def clear() -> None:
        deadline = time.monotonic() + 120.0  # a guard against a hang, not a speed check
        while time.monotonic() < deadline:
            if progress.is_dir() and any(progress.iterdir()):
                break
            time.sleep(0.02)
        clear_provider_holds(store, provider)

    clearing = threading.Thread(target=clear, daemon=True)
    clearing.start()
    try:
        yield
    finally:
        clearing.join()


def test_a_run_under_a_shared_pause_says_so_and_inspect_state_shows_it(
    invoke: Invoke, demo: Path, store: Path
) -> None:
    # Load-proof: the pause outlasts any start-up, and is cleared once the run executes (a
    # short pause could end before a loaded machine starts the run, which then says nothing).
    _pause(store, "fake", 300.0)  # the demo's provider: the run waits for it
    _pause(store, LOCAL, 300.0)  # another provider: not this run's concern

    with _cleared_once_running(store, "fake"):
        ran = invoke("run", demo, "--store", store, "--json")

    assert ran.exit_code == 0, ran.output
    lines = [line for line in ran.stderr.splitlines() if line.startswith("waiting:")]
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("waiting: provider 'fake': paused by a server's Retry-After until")
    assert f"to clear it: themis providers clear --store {store}" in ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]

    state = invoke("inspect", "state", run_id[:8], "--store", store)
    assert "waiting: provider 'local' (http://127.0.0.1:9/v1): paused by" in state.stdout
    assert f"to clear shared pauses: themis providers clear --store {store}" in state.stdout
    holds = output_json(invoke("inspect", "state", run_id[:8], "--store", store, "--json"))
    assert [hold["provider"] for hold in holds["holds"]] == ["local"]


def test_the_progress_bar_says_what_it_waits_for_and_until_when() -> None:
    until = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
    assert waiting_text(()) == ""
    assert waiting_text([ProviderHold("openai", "https://x/v1", "rate_limit", until)]) == (
        "waiting: provider 'openai' (https://x/v1): rate limit until 08:00:00 UTC"
    )
    both = [
        ProviderHold("openai", None, "pause", until, 17),
        ProviderHold("local", None, "open", until - 5),
    ]
    assert waiting_text(both) == (
        "waiting: provider 'openai': paused by a server's Retry-After until 08:00:00 UTC "
        "(published by PID 17) (+1 more)"
    )


def test_a_run_is_told_of_holds_on_its_judge_models_providers(
    invoke: Invoke, tmp_path: Path, store: Path
) -> None:
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    text = (EXAMPLES / "judge.toml").read_text()
    text = text.replace(  # judge-b on an endpoint of its own, paused; the tested models are not
        'name = "judge-b"\nprovider = "fake"', 'name = "judge-b"\nprovider = "local"\napi = "chat"'
    )
    text += '\n[runtime.endpoints.local]\nbase_url = "http://127.0.0.1:9/v1"\n'
    config = tmp_path / "judge.toml"
    config.write_text(text)
    _pause(store, LOCAL, 300.0)

    ran = invoke("run", config, "--store", store, "--until-stage", "generate", "--json")

    assert ran.exit_code == 0, ran.output
    lines = [line for line in ran.stderr.splitlines() if line.startswith("waiting:")]
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("waiting: provider 'local' (http://127.0.0.1:9/v1): paused by")
    run_id = json.loads(ran.stdout)["run_id"]

    resumed = invoke("resume", run_id[:8], "--store", store, "--until-stage", "generate")
    assert "waiting: provider 'local' (http://127.0.0.1:9/v1): paused by" in resumed.stderr

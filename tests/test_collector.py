"""`themis.collector`: a first use of a `themis` name imports its home with the collector paused,
and leaves the host's collector as it found it; `themis run` imports the engine so too (ADR 0111).

Each check runs in a fresh interpreter: only there is the engine not imported yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.helpers import TINY

# The engine's first use (`themis.Experiment`: trio, DuckDB, attrs' classes) and what the
# collector did meanwhile (its passes counted by a callback) and is after it.
_FIRST_USE = """
import gc, json, sys
import themis
import themis.collector  # compiled here when no bytecode is kept (PYTHONDONTWRITEBYTECODE)
setting = sys.argv[1]
if setting == "paused":
    gc.disable()
elif setting == "frozen":
    kept = [[] for _ in range(1000)]
    gc.freeze()
frozen = gc.get_freeze_count()
passes = []
def count(phase, info):
    if phase == "start":
        passes.append(info["generation"])
gc.callbacks.append(count)
themis.Experiment
gc.callbacks.clear()
print(json.dumps({
    "passes": passes,
    "enabled": gc.isenabled(),
    "threshold": gc.get_threshold(),
    "frozen_before": frozen,
    "frozen_after": gc.get_freeze_count(),
    "young": gc.get_count()[0],
}))
"""


def _first_use(setting: str) -> dict[str, object]:
    ran = subprocess.run(
        [sys.executable, "-c", _FIRST_USE, setting], capture_output=True, text=True, check=True
    )
    found: dict[str, object] = json.loads(ran.stdout)
    return found


def test_the_engine_is_imported_without_a_pass_of_the_collector_which_is_then_as_it_was() -> None:
    found = _first_use("enabled")
    assert found["passes"] == []  # ~150 passes, one of them full, without the pause
    assert found["enabled"] is True
    assert found["threshold"] == list(sys.modules["gc"].get_threshold())
    assert found["frozen_after"] == 0  # aged into the oldest generation, none left frozen
    assert found["young"] < 700  # examined by no young pass either: not left in the youngest


def test_a_collector_the_host_paused_stays_paused() -> None:
    found = _first_use("paused")
    assert found["passes"] == []
    assert found["enabled"] is False


def test_objects_the_host_froze_stay_frozen() -> None:
    found = _first_use("frozen")
    assert found["enabled"] is True
    assert found["frozen_before"] > 0
    # Still frozen, but for the few the import freed meanwhile (unfrozen: 0).
    assert found["frozen_after"] > 0.9 * found["frozen_before"]


# `themis run` through the console's `main` in a fresh interpreter: the collector's passes, by
# generation, over the whole command (a six-case run on the scripted model).
_CLI_RUN = """
import gc, json, sys
passes = []
def count(phase, info):
    if phase == "start":
        passes.append(info["generation"])
gc.callbacks.append(count)
from themis.app.cli.console import main
sys.argv = ["themis", "run", sys.argv[1], "--store", sys.argv[2], "--json", "--quiet"]
try:
    main()
except SystemExit as ending:
    assert not ending.code, ending.code
print(json.dumps(passes))
"""


def test_themis_run_imports_the_engine_without_a_full_pass_of_the_collector(
    tmp_path: Path,
) -> None:
    cases = ",\n".join(
        f'{{ id = "c{i}", fields = {{ a = {i} }}, expected = "{2 * i}" }}' for i in range(6)
    )
    config = tmp_path / "tiny.toml"
    config.write_text(TINY.format(cases=cases))
    ran = subprocess.run(
        [sys.executable, "-c", _CLI_RUN, str(config), str(tmp_path / "s.duckdb")],
        capture_output=True,
        text=True,
        check=True,
    )
    passes = json.loads(ran.stdout.strip().splitlines()[-1])
    assert 2 not in passes  # one full pass, among ~120, without the pause

"""The `ProviderStatePort` contract, run against every adapter (each supplies only its
constructor); then what only the file adapter promises: processes share it without losing a
deadline or tearing a file, a corrupt file is healed, and any provider name is a safe file name."""

from __future__ import annotations

import bisect
import itertools
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import attrs
import pytest

from themis.adapters.provider_state import (
    FORMAT_VERSION,
    FileProviderState,
    MemoryProviderState,
    file_stem,
)
from themis.core.provider_state import ProviderStateError, SharedProviderState
from themis.ports.provider_state import ProviderStatePort

NAMES = ("openai", "OpenAI", "a/b", "../../etc/passwd", ".", "", "ünïcødé ✓", "x" * 400)


def state(
    open_until: float | None = None,
    paused_until: float | None = None,
    at: float = 1_700_000_000.0,
    pid: int = 100,
) -> SharedProviderState:
    return SharedProviderState(
        open_until=open_until, paused_until=paused_until, updated_at=at, updated_by=pid
    )


class ProviderStateContract:
    """The tests every `ProviderStatePort` adapter must pass."""

    def make_port(self, tmp_path: Path) -> ProviderStatePort:
        raise NotImplementedError

    @pytest.fixture
    def port(self, tmp_path: Path) -> ProviderStatePort:
        return self.make_port(tmp_path)

    def test_an_unknown_provider_reads_as_none(self, port: ProviderStatePort) -> None:
        assert port.read("openai") is None

    def test_publish_then_read_round_trips(self, port: ProviderStatePort) -> None:
        published = state(open_until=1_700_000_030.5, paused_until=1_700_000_002.25, pid=77)
        assert port.publish("openai", published) == published
        assert port.read("openai") == published

    def test_publish_keeps_the_later_window_and_the_later_pause(
        self, port: ProviderStatePort
    ) -> None:
        port.publish("openai", state(open_until=100.0, paused_until=10.0, at=1.0, pid=1))
        merged = port.publish("openai", state(open_until=90.0, paused_until=50.0, at=2.0, pid=2))
        expected = state(open_until=100.0, paused_until=50.0, at=2.0, pid=2)
        assert merged == expected
        assert port.read("openai") == expected

    def test_an_older_publication_changes_no_later_deadline(self, port: ProviderStatePort) -> None:
        latest = state(open_until=100.0, paused_until=60.0, at=5.0, pid=9)
        port.publish("openai", latest)
        assert port.publish("openai", state(open_until=20.0, at=1.0, pid=3)) == latest
        assert port.publish("openai", state(at=2.0, pid=1)) == latest
        assert port.read("openai") == latest

    def test_a_deadline_fills_in_beside_the_other(self, port: ProviderStatePort) -> None:
        port.publish("openai", state(open_until=100.0, at=1.0))
        port.publish("openai", state(paused_until=40.0, at=2.0))
        assert port.read("openai") == state(open_until=100.0, paused_until=40.0, at=2.0)

    def test_providers_are_independent(self, port: ProviderStatePort) -> None:
        port.publish("openai", state(open_until=100.0))
        port.publish("anthropic", state(paused_until=7.0, pid=5))
        assert port.read("openai") == state(open_until=100.0)
        assert port.read("anthropic") == state(paused_until=7.0, pid=5)
        assert port.read("vllm") is None

    def test_any_name_is_its_own_provider(self, port: ProviderStatePort) -> None:
        for index, name in enumerate(NAMES):
            port.publish(name, state(open_until=float(index), pid=index))
        for index, name in enumerate(NAMES):
            assert port.read(name) == state(open_until=float(index), pid=index)

    def test_entries_list_every_provider(self, port: ProviderStatePort) -> None:
        assert port.entries() == []
        for index, name in enumerate(NAMES):
            port.publish(name, state(paused_until=float(index), pid=index))
        assert sorted(port.entries()) == sorted(
            (name, state(paused_until=float(index), pid=index)) for index, name in enumerate(NAMES)
        )

    def test_clear_leaves_a_tombstone_of_one_provider_or_all(self, port: ProviderStatePort) -> None:
        port.publish("local @ http://a", state(paused_until=100.0))
        port.publish("local @ http://b", state(paused_until=200.0))
        port.publish("openai", state(open_until=50.0))
        assert port.clear("local @ http://a") == ["local @ http://a"]
        assert port.read("local @ http://a") == attrs.evolve(state(), generation=1)
        assert port.clear("local @ http://a") == []  # nothing left to clear
        assert port.clear("never published") == []
        assert port.read("local @ http://b") == state(paused_until=200.0)
        assert sorted(port.clear()) == ["local @ http://b", "openai"]
        assert [entry.holding for _, entry in port.entries()] == [False] * 3
        # A cleared provider starts afresh: an older deadline is no longer merged in, and the
        # generation stays, for runs that wait to see the clear.
        port.publish("openai", state(open_until=10.0))
        assert port.read("openai") == attrs.evolve(state(open_until=10.0), generation=1)
        port.clear("openai")
        assert port.read("openai") == attrs.evolve(state(), generation=2)


class TestMemoryProviderState(ProviderStateContract):
    def make_port(self, tmp_path: Path) -> ProviderStatePort:
        return MemoryProviderState()


class TestFileProviderState(ProviderStateContract):
    def make_port(self, tmp_path: Path) -> ProviderStatePort:
        return FileProviderState(tmp_path / "themis.duckdb.providers")


# --- only the file adapter ----------------------------------------------------------------------


def test_another_instance_on_the_directory_sees_the_state(tmp_path: Path) -> None:
    published = state(open_until=130.0, pid=4)
    FileProviderState(tmp_path / "p").publish("openai", published)
    assert FileProviderState(tmp_path / "p").read("openai") == published


def test_reading_creates_nothing(tmp_path: Path) -> None:
    port = FileProviderState(tmp_path / "missing" / "providers")
    assert port.read("openai") is None
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    "content",
    [
        "",
        '{"version": 1, "provider": "openai", "open_until": 1',  # a torn write
        "not json at all",
        "[1, 2, 3]",
        "\ud800".encode("utf-8", "surrogatepass"),
        json.dumps({"version": FORMAT_VERSION + 1, "provider": "openai"}),
        json.dumps(
            {"version": 1, "provider": "anthropic", "open_until": None, "paused_until": None}
            | {"updated_at": 1.0, "updated_by": 1}
        ),  # another provider's record (a hash collision)
        json.dumps({"version": 1, "provider": "openai", "open_until": 5.0}),
        json.dumps(
            {"version": 1, "provider": "openai", "open_until": "soon", "paused_until": None}
            | {"updated_at": 1.0, "updated_by": 1}
        ),
        '{"version": 1, "provider": "openai", "open_until": 1e999, "paused_until": null,'
        ' "updated_at": 1.0, "updated_by": 1}',
        "[" * 100_000,
    ],
)
def test_a_corrupt_file_reads_as_none_and_the_next_publish_heals_it(
    tmp_path: Path, content: str | bytes
) -> None:
    port = FileProviderState(tmp_path)
    target = tmp_path / f"{file_stem('openai')}.json"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")
    assert port.read("openai") is None
    published = state(paused_until=12.0)
    assert port.publish("openai", published) == published
    assert port.read("openai") == published


def test_an_unreadable_state_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / f"{file_stem('openai')}.json").mkdir()
    assert FileProviderState(tmp_path).read("openai") is None
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    assert FileProviderState(tmp_path / "a-file").read("openai") is None


def test_publishing_into_an_unwritable_place_raises_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "store.duckdb").write_text("", encoding="utf-8")
    port = FileProviderState(tmp_path / "store.duckdb" / "providers")
    with pytest.raises(ProviderStateError, match=r"'openai' in .*store\.duckdb[/\\]providers"):
        port.publish("openai", state(open_until=1.0))


def test_a_failed_replace_leaves_no_temp_file_and_the_old_state(tmp_path: Path) -> None:
    port = FileProviderState(tmp_path)
    first = state(open_until=10.0)
    port.publish("openai", first)
    (tmp_path / f"{file_stem('openai')}.json").unlink()
    (tmp_path / f"{file_stem('openai')}.json").mkdir()  # os.replace onto a directory fails
    with pytest.raises(ProviderStateError):
        port.publish("openai", state(open_until=20.0))
    assert not list(tmp_path.glob("*.tmp"))


def test_provider_names_map_to_distinct_safe_file_names(tmp_path: Path) -> None:
    port = FileProviderState(tmp_path)
    for name in NAMES:
        port.publish(name, state(open_until=1.0))
    files = sorted(path.name for path in tmp_path.iterdir())
    safe = re.compile(r"[a-z0-9_-]{1,48}-[0-9a-f]{16}\.(json|lock)")
    assert all(safe.fullmatch(name) for name in files), files
    assert len(files) == 2 * len(NAMES)  # no two names share a file, case variants included
    assert all(path.is_file() for path in tmp_path.iterdir())  # nothing nested or escaped
    assert file_stem("OpenAI").startswith("openai-")
    assert file_stem("a/b").startswith("a_b-")
    assert file_stem("ünïcødé ✓").startswith("n_c_d-")
    assert file_stem("") == file_stem("") != file_stem(".")


# --- two processes ------------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, os, random, sys, time
    from pathlib import Path
    from themis.adapters.provider_state import FileProviderState
    from themis.core.provider_state import SharedProviderState

    directory, seed, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    output = directory.parent / f"records-{seed}.json"
    port, rng, records = FileProviderState(directory), random.Random(seed), []
    (directory.parent / f"ready-{seed}").touch()
    while not (directory.parent / "go").exists():
        time.sleep(0.001)
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline and step < 20_000:
        # Noisy, rising deadlines: the maximum moves often, so a lost one is soon noticed.
        update = SharedProviderState(
            open_until=step + rng.uniform(0, 40) if rng.random() < 0.8 else None,
            paused_until=step + rng.uniform(0, 40) if rng.random() < 0.8 else None,
            updated_at=float(step),
            updated_by=os.getpid(),
        )
        started = time.monotonic()
        merged = port.publish("shared/provider", update)
        ended = time.monotonic()
        records.append([started, ended, update.open_until, update.paused_until,
                        merged.open_until, merged.paused_until])
        step += 1
    output.write_text(json.dumps(records), encoding="utf-8")
    """
)

Record = tuple[float, float, float | None, float | None, float | None, float | None]


def _at_least(value: float | None, floor: float | None) -> bool:
    return floor is None or (value is not None and value >= floor)


def _check_linearizable(records: list[Record], field: int) -> None:
    """Every publish returns at least every deadline whose publish ended before it started."""
    by_end = sorted(records, key=lambda record: record[1])
    ends = [record[1] for record in by_end]
    running: list[float | None] = []
    best: float | None = None
    for record in by_end:
        value = record[2 + field]
        if value is not None and (best is None or value > best):
            best = value
        running.append(best)
    for record in records:
        before = bisect.bisect_left(ends, record[0])
        floor = running[before - 1] if before else None
        assert _at_least(record[4 + field], floor), (record, floor)


def _monotone(reads: list[SharedProviderState | None]) -> bool:
    seen = [read for read in reads if read is not None]
    pairs = itertools.pairwise(seen)
    return all(
        _at_least(b.open_until, a.open_until) and _at_least(b.paused_until, a.paused_until)
        for a, b in pairs
    )


@pytest.mark.slow
def test_two_processes_publishing_at_once_lose_no_deadline_and_tear_no_file(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "providers"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(directory), str(seed), "1.0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    try:
        deadline = time.monotonic() + 30
        while not all((tmp_path / f"ready-{seed}").exists() for seed in (1, 2)):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(worker.poll() is None for worker in workers)
            time.sleep(0.005)
        (tmp_path / "go").touch()
        port = FileProviderState(directory)
        reads: list[SharedProviderState | None] = []
        while any(worker.poll() is None for worker in workers):
            assert time.monotonic() < deadline, "workers did not finish"
            reads.append(port.read("shared/provider"))
        errors = [worker.communicate(timeout=5)[1] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0], errors
    logs = [json.loads((tmp_path / f"records-{seed}.json").read_text()) for seed in (1, 2)]
    assert all(len(log) > 50 for log in logs)  # both published many times, side by side
    records: list[Record] = [tuple(record) for log in logs for record in log]

    first = next(index for index, read in enumerate(reads) if read is not None)
    assert all(read is not None for read in reads[first:])  # never a torn or missing file
    assert _monotone(reads)
    for field in (0, 1):
        _check_linearizable(records, field)
    final = port.read("shared/provider")
    assert final is not None
    assert final.open_until == max(r[2] for r in records if r[2] is not None)
    assert final.paused_until == max(r[3] for r in records if r[3] is not None)
    assert sorted(path.suffix for path in directory.iterdir()) == [".json", ".lock"]

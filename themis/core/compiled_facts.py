"""What a command needs of a stored run's compiled spec to answer "already complete", kept
beside the snapshot so that answer decodes neither the snapshot nor the checkpoint's state.

Two kinds of entry share one shape (ADR 0034): a run's own facts (key `run_key(run_id)`),
written with each checkpoint and trusted only while the log has no event after `seq`; and a
config's (key `config_key(...)`), mapping a config file's bytes, its `--set` overrides and the
content digests of the dataset files it read to the `run_id` they compile to, so `themis run`
of a completed run need not read or hash its cases again. Both are caches: dropping them changes
no answer, only how long it takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import field, frozen

from themis.core.identity import digest
from themis.core.scoring import METRIC_VERSIONS, PARSER_VERSIONS
from themis.core.stages import Stage

__all__ = ["CompiledFacts", "config_key", "outdated_versions", "run_key"]

FACTS_FORMAT = 1  # bump when what a key covers changes: older entries are then never found


def _versions(value: Mapping[str, int]) -> Mapping[str, int]:
    return dict(value)


def _strings(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


def _pairs(value: Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(path), str(sha)) for path, sha in value)


@frozen
class CompiledFacts:
    """A compiled run as far as answering it from its checkpoint needs: its name, last stage,
    providers (for the notice of shared holds), the built-in parser and metric versions it was
    compiled with (an older one is refused, never answered), and the progress display asked for.

    A config entry also holds the dataset files it read with their sha256 (`files`), the
    environment variables its endpoints read (a run needs them set even when nothing runs), and
    the lines printed before running (`notices`: config warnings and the preflight summary).

    A run's entry also vouches for its stored snapshot (ADR 0077): `snapshot` names the
    snapshot as the store held it when the entry was written (`SnapshotOutline.stored_as`),
    and `stand_in` is the run id its spec compiles to with each dataset's cases stood in for
    (`themis.core.planner.stand_in_id`): a reader that finds the snapshot still stored as
    `snapshot`, and its outline still compiling to `stand_in`, checks the run's identity
    without reading a case. Empty: nothing vouched for."""

    run_id: str
    name: str
    final_stage: Stage = field(converter=Stage)
    providers: tuple[str, ...] = field(converter=_strings)
    versions: Mapping[str, int] = field(converter=_versions)
    progress: str = "auto"
    seq: int = 0
    files: tuple[tuple[str, str], ...] = field(default=(), converter=_pairs)
    variables: tuple[str, ...] = field(default=(), converter=_strings)
    notices: tuple[str, ...] = field(default=(), converter=_strings)
    snapshot: str = ""
    stand_in: str = ""

    @property
    def outdated(self) -> tuple[str, ...]:
        return outdated_versions(self.versions)


def outdated_versions(versions: Mapping[str, int]) -> tuple[str, ...]:
    """`name vN (now vM)` for each built-in parser or metric compiled at another version than
    today's (plugins are not listed: their version is part of the run)."""
    current = {**PARSER_VERSIONS, **METRIC_VERSIONS}
    return tuple(
        f"{name} v{version} (now v{current[name]})"
        for name, version in versions.items()
        if name in current and version != current[name]
    )


def run_key(run_id: str) -> str:
    return f"run:{run_id}"


def config_key(config_sha256: str, path: str, overrides: Sequence[str], version: str) -> str:
    """The key of a config file's entry: its bytes' digest, where it is (relative dataset paths
    resolve from there), the overrides applied in order, and the Themis version and built-in
    parser and metric versions (what the compiled identity depends on besides the file)."""
    document = {
        "config": config_sha256,
        "format": FACTS_FORMAT,
        "overrides": list(overrides),
        "path": path,
        "themis": version,
        "versions": {**PARSER_VERSIONS, **METRIC_VERSIONS},
    }
    return f"config:{digest(document)}"

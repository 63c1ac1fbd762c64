"""The `Orchestrator`'s import and export methods: stage bundles (one pair per stage, as the
seed names them), provider batch files and answers produced elsewhere. Each is a call of
`themis.app.api.bundles` on the orchestrator's store."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from themis.app.api import bundles
from themis.app.api.bundles import BatchImport
from themis.app.api.experiment import Experiment
from themis.app.usecases.bundles import ImportOutcome
from themis.core.bundles import BundleKind, BundleManifest
from themis.core.candidates import Candidate, Evaluated
from themis.ports.clock import ClockPort
from themis.ports.store import StorePort

__all__ = ["BundleMethods"]


class BundleMethods(ABC):
    """Mixed into `Orchestrator`, which supplies the store, experiments and exclusivity."""

    _clock: ClockPort | None
    experiment: Callable[[Any], Experiment]
    _exclusive: Callable[[], AbstractContextManager[None]]

    @property
    @abstractmethod
    def store(self) -> StorePort:
        """The store the methods read and write (the orchestrator's)."""

    def export_bundle(
        self, run_id: str, kind: BundleKind | str, path: str | Path
    ) -> BundleManifest:
        """Write a stored run's `kind` results (`generation`, `reduction`, `parse`, `score`,
        `evaluation`) as a bundle: a directory, or one file ending in `.jsonl` or `.parquet`."""
        return bundles.export_stage_bundle(run_id, kind, path, self.store)

    def import_bundle(self, path: str | Path, *, into: str | None = None) -> ImportOutcome:
        """Record a bundle's results in its run through the event log; importing it twice
        changes nothing, and `into` (a run id or prefix) refuses another run's bundle."""
        with self._exclusive():
            return bundles.import_stage_bundle(path, self.store, into=into)

    def export_generation_bundle(self, run_id: str, path: str | Path) -> BundleManifest:
        """`export_bundle` of the run\'s generation results."""
        return self.export_bundle(run_id, BundleKind.GENERATION, path)

    def import_generation_bundle(
        self, path: str | Path, *, into: str | None = None
    ) -> ImportOutcome:
        """`import_bundle` of a generation bundle (any bundle kind is read the same way)."""
        return self.import_bundle(path, into=into)

    def export_reduction_bundle(self, run_id: str, path: str | Path) -> BundleManifest:
        """`export_bundle` of the run\'s reduction results."""
        return self.export_bundle(run_id, BundleKind.REDUCTION, path)

    def import_reduction_bundle(
        self, path: str | Path, *, into: str | None = None
    ) -> ImportOutcome:
        """`import_bundle` of a reduction bundle (any bundle kind is read the same way)."""
        return self.import_bundle(path, into=into)

    def export_parse_bundle(self, run_id: str, path: str | Path) -> BundleManifest:
        """`export_bundle` of the run\'s parse results."""
        return self.export_bundle(run_id, BundleKind.PARSE, path)

    def import_parse_bundle(self, path: str | Path, *, into: str | None = None) -> ImportOutcome:
        """`import_bundle` of a parse bundle (any bundle kind is read the same way)."""
        return self.import_bundle(path, into=into)

    def export_score_bundle(self, run_id: str, path: str | Path) -> BundleManifest:
        """`export_bundle` of the run\'s score results."""
        return self.export_bundle(run_id, BundleKind.SCORE, path)

    def import_score_bundle(self, path: str | Path, *, into: str | None = None) -> ImportOutcome:
        """`import_bundle` of a score bundle (any bundle kind is read the same way)."""
        return self.import_bundle(path, into=into)

    def export_evaluation_bundle(self, run_id: str, path: str | Path) -> BundleManifest:
        """`export_bundle` of the run\'s evaluation results."""
        return self.export_bundle(run_id, BundleKind.EVALUATION, path)

    def import_evaluation_bundle(
        self, path: str | Path, *, into: str | None = None
    ) -> ImportOutcome:
        """`import_bundle` of a evaluation bundle (any bundle kind is read the same way)."""
        return self.import_bundle(path, into=into)

    def export_batch(
        self,
        experiment: Any,
        path: str | Path,
        batch_format: str = "openai",
        *,
        models: Sequence[str] = (),
    ) -> int:
        """Write the run's pending generation requests as a provider batch file (`openai`:
        Batch API input; `anthropic`: Message Batches requests); the requests written."""
        return bundles.export_batch(
            self.experiment(experiment), path, batch_format, self.store, models=models
        )

    def import_batch(
        self, experiment: Any, path: str | Path, batch_format: str = "openai"
    ) -> BatchImport:
        """Record a provider's batch output as the run's generations; a run of the experiment
        then completes without calling a model for them."""
        with self._exclusive():
            return bundles.import_batch(
                self.experiment(experiment), path, batch_format, self.store, clock=self._clock
            )

    def import_candidates(
        self, experiment: Any, candidates: Iterable[Candidate | Mapping[str, Any]]
    ) -> ImportOutcome:
        """Record answers produced anywhere (another tool, a human) as the run's generations:
        each a `Candidate` or a mapping with `case_id`, `text` and, where the run has several,
        `model`, `prompt`, `dataset`, `sample`."""
        with self._exclusive():
            return bundles.import_candidates(
                self.experiment(experiment), candidates, self.store, clock=self._clock
            )

    def import_generation_results(
        self, experiment: Any, records: Iterable[Candidate | Mapping[str, Any]]
    ) -> ImportOutcome:
        """The seed's name for importing generations made elsewhere for the run's pending
        work (after `export_batch`, or any other handoff): `import_candidates`."""
        return self.import_candidates(experiment, records)

    def import_evaluation_results(
        self, experiment: Any, records: Iterable[Evaluated | Mapping[str, Any]]
    ) -> ImportOutcome:
        """Record evaluations made elsewhere of the run's stored generations: each names its
        trial as a `Candidate` does and gives `scores` (every metric of the run, in [0, 1]) and
        optionally the parsed `answer`; importing twice changes nothing."""
        with self._exclusive():
            return bundles.import_evaluations(
                self.experiment(experiment), records, self.store, clock=self._clock
            )

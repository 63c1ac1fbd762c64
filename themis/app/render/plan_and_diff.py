"""What `themis plan` and `themis diff` print: rich tables and lines, and their stable JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from themis.app.render.reports import counted
from themis.app.usecases.planning import ConfigComparison, PlanResult, StoredRun
from themis.core.diffing import ABSENT, FieldChange
from themis.core.identity import FieldClass
from themis.core.manifest import GroupCount, RunManifest
from themis.core.stages import Stage

CLASS_TITLES = {
    FieldClass.IDENTITY: "identity (changes the run_id)",
    FieldClass.RUNTIME: "runtime (how it runs; never the run_id)",
    FieldClass.PROVENANCE: "provenance (recorded beside the run; never hashed)",
}
_MAX_VALUE = 60


# --- plan --------------------------------------------------------------------------------------


def _group_json(group: GroupCount) -> dict[str, Any]:
    data: dict[str, Any] = {"name": group.name}
    if group.cases is not None:
        data["cases"] = group.cases
    data.update(trials=group.trials, generations=group.generations)
    return data


def manifest_json(manifest: RunManifest) -> dict[str, Any]:
    return {
        "run_id": manifest.run_id,
        "name": manifest.name,
        "seed": manifest.seed,
        "samples": manifest.samples,
        "trials": manifest.trials,
        "model_calls": manifest.generations,
        "stages": {stage.value: count for stage, count in manifest.stages.items()},
        "datasets": [_group_json(group) for group in manifest.datasets],
        "models": [_group_json(group) for group in manifest.models],
        "prompts": [_group_json(group) for group in manifest.prompts],
        "parser": manifest.parser,
        "metrics": list(manifest.metrics),
    }


def _stored_json(stored: StoredRun) -> dict[str, Any]:
    through = stored.completed_through_stage
    return {
        "status": stored.status,
        "completed_through_stage": through.value if through else None,
        "scored": stored.scored,
        "failed": stored.failed,
        "pending": stored.pending,
        "remaining_model_calls": stored.remaining_generations,
    }


def plan_json(result: PlanResult, store: str, *, store_existed: bool) -> dict[str, Any]:
    """`themis plan --json`: the manifest plus what the store holds (`run: null`: not there)."""
    return {
        **manifest_json(result.manifest),
        "store": {
            "path": store,
            "exists": store_existed or result.saved,
            "saved": result.saved,
            "run": _stored_json(result.stored) if result.stored else None,
        },
    }


def plan_header(manifest: RunManifest) -> list[str]:
    """The lines above the table: the full run_id, then what the run is made of."""
    samples = f"{manifest.samples} sample{'s' if manifest.samples != 1 else ''}"
    return [
        f"run_id {manifest.run_id}",
        f"{manifest.name} · seed {manifest.seed} · {samples} · parser {manifest.parser} · "
        f"metrics {', '.join(manifest.metrics)}",
    ]


def plan_table(manifest: RunManifest) -> Table:
    """One row per dataset, model and prompt: cases, trials and model calls."""
    table = Table()
    table.add_column("group")
    table.add_column("name")
    for column in ("cases", "trials", "model calls"):
        table.add_column(column, justify="right")
    for kind, groups in (
        ("dataset", manifest.datasets),
        ("model", manifest.models),
        ("prompt", manifest.prompts),
    ):
        for group in groups:
            cases = "" if group.cases is None else str(group.cases)
            table.add_row(kind, group.name, cases, str(group.trials), str(group.generations))
    return table


def plan_stage_line(manifest: RunManifest) -> str:
    """Trials per executed stage; `generate` counts distinct requests (twins share one), `judge`
    the judge calls."""
    calls = (Stage.GENERATE, Stage.JUDGE)
    return "stages: " + " · ".join(
        f"{stage.value} {counted(count, 'model call' if stage in calls else 'trial')}"
        for stage, count in manifest.stages.items()
    )


def plan_store_line(result: PlanResult, store: str, *, store_existed: bool) -> str:
    """Where the run stands in the store, in one line."""
    stored = result.stored
    if stored is not None:
        through = stored.completed_through_stage
        status = stored.status + (f" through {through.value}" if through else "")
        return (
            f"store {store}: run stored, {status}: {stored.scored} scored, {stored.failed} "
            f"failed, {stored.pending} pending; "
            f"{counted(stored.remaining_generations, 'model call')} to go"
        )
    if result.saved:
        return f"store {store}: new run; snapshot saved (status planned, no events)"
    if not store_existed:
        return f"store {store}: does not exist; nothing saved (`themis run` creates it)"
    return f"store {store}: the run is not in the store; nothing saved (--no-save)"


# --- diff --------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value == ABSENT:
        return ABSENT
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _change_json(change: FieldChange) -> dict[str, Any]:
    return {"path": change.path, "old": change.old, "new": change.new}


def diff_json(comparison: ConfigComparison) -> dict[str, Any]:
    """`themis diff --json`: both run_ids, `same_run`, and the changes per class."""
    return {
        "a": {"config": comparison.source_a, "run_id": comparison.run_id_a},
        "b": {"config": comparison.source_b, "run_id": comparison.run_id_b},
        "same_run": comparison.same_run,
        **{
            field_class.value: [_change_json(change) for change in changes]
            for field_class, changes in comparison.by_class.items()
        },
    }


def diff_lines(comparison: ConfigComparison, overrides_b: list[str]) -> list[str]:
    """Both run_ids, each class's changes (`path: old → new`), then `same run` or not."""
    sets = "".join(f" --set {text}" for text in overrides_b)
    lines = [
        f"A: {comparison.source_a} · run {comparison.run_id_a[:12]}",
        f"B: {comparison.source_b}{sets} · run {comparison.run_id_b[:12]}",
    ]
    for field_class, changes in comparison.by_class.items():
        title = CLASS_TITLES[field_class]
        if not changes:
            lines.append(f"{title}: no changes")
            continue
        lines.append(f"{title}: {len(changes)} change{'s' if len(changes) != 1 else ''}")
        lines.extend(
            f"  {change.path}: {_value(change.old)} → {_value(change.new)}" for change in changes
        )
    if comparison.same_run:
        lines.append("same run: B reuses or resumes A's stored run")
    else:
        lines.append("different runs: B does not reuse A's stored run")
    return lines

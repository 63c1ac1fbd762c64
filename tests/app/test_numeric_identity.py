"""A float field given an int in Python code (`temperature=0`) is the run that `0.0` is.

The stored snapshot reads every float field back as a float; if the int hashed differently, a
run started from Python would refuse to reopen ("its stored spec compiles to ...").
"""

from __future__ import annotations

from pathlib import Path

import attrs

from tests.app.doubles import make_spec
from themis.adapters.stores.duckdb import DuckDBStore
from themis.app.usecases.runs import load_compiled
from themis.core.planner import compile_run
from themis.core.runtime import RuntimeConfig
from themis.core.snapshot import RunSnapshot
from themis.core.spec import ExperimentSpec, GenerationParams, MetricSpec


def _with(params: GenerationParams, metric: MetricSpec) -> ExperimentSpec:
    base = make_spec()
    model = attrs.evolve(base.models[0], params=params)
    return attrs.evolve(base, models=(model,), metrics=(metric,))


def test_an_int_in_a_float_field_is_the_same_run_as_its_float() -> None:
    as_int = _with(
        GenerationParams(temperature=0, top_p=1), MetricSpec("numeric_match", tolerance=0)
    )
    as_float = _with(
        GenerationParams(temperature=0.0, top_p=1.0), MetricSpec("numeric_match", tolerance=0.0)
    )

    assert compile_run(as_int).run_id == compile_run(as_float).run_id


def test_a_run_built_with_ints_in_float_fields_reopens_from_its_store(tmp_path: Path) -> None:
    spec = _with(GenerationParams(temperature=0), MetricSpec("numeric_match", tolerance=0))
    compiled = compile_run(spec)
    store = DuckDBStore(tmp_path / "themis.duckdb")
    try:
        store.save_snapshot(RunSnapshot(compiled.run_id, 0.0, spec, RuntimeConfig()))
        _, reopened = load_compiled(store, compiled.run_id)
    finally:
        store.close()

    assert reopened.run_id == compiled.run_id

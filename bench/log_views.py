"""The log as data: what keeping a run's trial places costs, and how fast the views answer.

Builds and runs an N-trial experiment (default 100,000; the `bench/resume.py` experiment: one
scripted model without latency, one prompt, one sample, two metrics) in a temporary DuckDB
file, then times, on that store:

- `places`: computing the run's places (a plan pass) and inserting them, as `save_snapshot`
  does once per run (timed apart, on a copy of the snapshot under another run id);
- `trials view`: `SELECT count(*), avg(scores['exact_match']) FROM trials` with a plain client;
- `log_table`: `themis.log_table(run, "trials")` (attach, copy one run's rows, detach);
- `export parquet`: `themis export` of every view.

Usage: `python bench/log_views.py [N]`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resume import experiment  # the same synthetic experiment

N = 100_000


def main(n: int) -> None:
    import themis
    from themis.adapters.stores.duckdb_views import INSERT_PLACES, place_columns

    with tempfile.TemporaryDirectory() as directory:
        store = Path(directory) / "s.duckdb"
        started = time.perf_counter()
        result = experiment(n).run(store=store, progress="off")
        print(f"run of {n} trials (places included): {time.perf_counter() - started:.2f} s")
        run_id = result.run_id
        reader = themis.DuckDBStore(store, read_only=True)
        snapshot = reader.load_snapshot(run_id)
        reader.close()
        assert snapshot is not None
        started = time.perf_counter()
        columns = place_columns(snapshot)
        planned = time.perf_counter() - started
        assert columns is not None
        columns[0] = "bench-copy"
        with duckdb.connect(str(store)) as con:
            started = time.perf_counter()
            con.execute(INSERT_PLACES, columns)
            inserted = time.perf_counter() - started
            con.execute("DELETE FROM trial_places WHERE run_id = 'bench-copy'")
        print(
            f"places: plan pass {planned:.2f} s ({planned / n * 1e6:.1f} µs/trial), "
            f"insert {inserted:.2f} s ({inserted / n * 1e6:.1f} µs/trial)"
        )
        with duckdb.connect(str(store), read_only=True) as con:
            started = time.perf_counter()
            row = con.execute("SELECT count(*), avg(scores['exact_match']) FROM trials").fetchone()
            print(f"trials view (plain client): {time.perf_counter() - started:.2f} s -> {row}")
        started = time.perf_counter()
        table = themis.log_table(run_id, "trials", store=store)
        print(f"log_table trials: {time.perf_counter() - started:.2f} s, {len(table)} rows")
        started = time.perf_counter()
        themis.export_run(run_id, "parquet", Path(directory) / "out", store=store)
        print(f"export parquet (6 views): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N)

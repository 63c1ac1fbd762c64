"""Stage bundles as JSON lines and as Parquet: size, and CPU and wall seconds to export and import.

`python bench/bundles.py [CASES]` runs CASES cases x 4 samples on the scripted model in a memory
store, exports the generation bundle both ways, and imports each into a fresh memory store.
Prints one line per step; under load, trust the CPU seconds (`time.process_time`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import themis


def _project() -> themis.ProjectSpec:
    return themis.ProjectSpec(storage=themis.StorageSpec(path="memory"))


def main(cases: int) -> None:
    config = {
        "seed": 1,
        "samples": 4,
        "datasets": [
            {
                "name": "d",
                "cases": [
                    {"id": f"c{i}", "fields": {"a": i}, "expected": str(2 * i)}
                    for i in range(cases)
                ],
            }
        ],
        "models": [{"name": "m", "model": "fake-model", "options": {"skill": 0.7}}],
        "prompts": [{"name": "p", "template": "{{ a }} + {{ a }} = ?"}],
        "parser": {"name": "number"},
    }
    with tempfile.TemporaryDirectory() as scratch, themis.Orchestrator(_project()) as source:
        run_id = source.run(config).run_id
        for name in ("g.jsonl", "g.parquet"):
            path = Path(scratch) / name
            wall, cpu = time.perf_counter(), time.process_time()
            manifest = source.export_generation_bundle(run_id, path)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            size = path.stat().st_size / 1e6
            print(
                f"export {name}: {manifest.rows} rows {size:.2f} MB "
                f"cpu {cpu:.2f} s wall {wall:.2f} s"
            )
        for name in ("g.jsonl", "g.parquet"):
            with themis.Orchestrator(_project()) as target:
                wall, cpu = time.perf_counter(), time.process_time()
                outcome = target.import_bundle(Path(scratch) / name)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(f"import {name}: {outcome.imported} rows cpu {cpu:.2f} s wall {wall:.2f} s")
    print("load average", " ".join(f"{value:.1f}" for value in os.getloadavg()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2500)

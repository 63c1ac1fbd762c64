"""The Python API for research code: experiments, stored runs' views, plans and config diffs.

`experiment` holds `Experiment` and the functions over stored runs, `views` the inspection
views, `lifecycle` planning and config diffs; the names are gathered here as well.
"""

from themis.app.api.experiment import (
    Experiment,
    clear_provider_holds,
    load_report,
    provider_holds,
    replay,
    resume,
    runs,
)
from themis.app.api.lifecycle import diff_configs, plan_run
from themis.app.api.views import (
    get_evaluation_execution,
    get_execution_state,
    get_run_progress,
    get_run_snapshot,
    quickcheck,
)
from themis.app.wiring import StoreLike

__all__ = [
    "Experiment",
    "StoreLike",
    "clear_provider_holds",
    "diff_configs",
    "get_evaluation_execution",
    "get_execution_state",
    "get_run_progress",
    "get_run_snapshot",
    "load_report",
    "plan_run",
    "provider_holds",
    "quickcheck",
    "replay",
    "resume",
    "runs",
]

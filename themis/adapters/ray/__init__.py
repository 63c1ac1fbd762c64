"""The Ray executor's adapters: model calls and code execution run on a Ray cluster (ADR 0030).

Importing this package imports Ray: only `themis.app.wiring` does, inside the function that
builds a Ray execution's ports, so `import themis` and every other command never load it.
"""

from themis.adapters.ray.cluster import joined_cluster
from themis.adapters.ray.models import RayModel, hosted_models
from themis.adapters.ray.sandbox import RaySandbox

__all__ = ["RayModel", "RaySandbox", "hosted_models", "joined_cluster"]

"""`Ports`: every adapter one execution runs on, in one frozen value.

The composition root (`themis.app.wiring`) builds it and hands it to the use cases, which hand it
to the interpreter; nothing below the root names a concrete adapter or builds one.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen

from themis.app.execution.provider_registry import ProviderRegistry
from themis.ports.clock import ClockPort
from themis.ports.live_progress import LiveProgressPort
from themis.ports.model import ModelPort
from themis.ports.provider_state import ProviderStatePort
from themis.ports.sandbox import SandboxPort
from themis.ports.store import StorePort

__all__ = ["Ports"]


@frozen
class Ports:
    """The store, the clock, one model port per provider, and the optional shared parts.

    `provider_state` shares breaker windows and Retry-After pauses with other processes
    (ADR 0009) and `live` publishes progress for them (ADR 0007); `None`: not shared. `sandbox`
    runs the candidates of an `execution` metric (`None`: the run has none). `registry`
    holds this execution's rate limits and breakers; whoever runs an experiment owns it, so
    executions share one only when they are handed the same (and only on one clock).
    """

    store: StorePort
    clock: ClockPort
    models: Mapping[str, ModelPort] = field(factory=dict)
    provider_state: ProviderStatePort | None = None
    live: LiveProgressPort | None = None
    sandbox: SandboxPort | None = None
    registry: ProviderRegistry = field(factory=ProviderRegistry)

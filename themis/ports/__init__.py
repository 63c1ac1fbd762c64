"""The ports: the only ways the application reaches the outside. Protocols, nothing else."""

from themis.ports.clock import ClockPort
from themis.ports.model import BeforeSend, ModelPort, SendTimedModelPort
from themis.ports.provider_state import ProviderStatePort
from themis.ports.store import CheckpointStore, EventLog, GenerationIndex, RunCatalog, StorePort

__all__ = [
    "BeforeSend",
    "CheckpointStore",
    "ClockPort",
    "EventLog",
    "GenerationIndex",
    "ModelPort",
    "ProviderStatePort",
    "RunCatalog",
    "SendTimedModelPort",
    "StorePort",
]

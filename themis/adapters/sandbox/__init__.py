"""Sandboxes that run candidates' code (`themis.ports.sandbox.SandboxPort`)."""

from themis.adapters.sandbox.subprocess import SubprocessSandbox, probe_isolation

__all__ = ["SubprocessSandbox", "probe_isolation"]

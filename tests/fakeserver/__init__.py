"""Our own fault-injecting OpenAI-compatible and Anthropic-messages server, for tests and benches.

Started by the tests on 127.0.0.1 in a child process (`start_fake_server()`), it answers
deterministically from the request and injects faults on demand; see `behaviour.py`.
"""

from tests.fakeserver.control import FakeServer, start_fake_server

__all__ = ["FakeServer", "start_fake_server"]

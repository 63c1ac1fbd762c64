"""What the HTTP model adapters share: a pooled client per run, secrets, and the error boundary.

One connection pool per provider endpoint and trio run: it holds as many keep-alive connections
as the run lets calls be in flight for that provider, is opened by the first call of a run and
closed (inside that run) when the run's main task ends. A plain `http://` endpoint (a local
server) gets the lean HTTP/1.1 client of `h1` (`H1Pool`, ~10x less CPU per call); `https://`,
HTTP/2 and an injected test transport get `pool.ClientPool` (a few small `httpx.AsyncClient`s).
Secrets are resolved from the environment at every call and never kept, logged or put in a message.

Every failure leaves as a `ModelCallError` whose `kind` is one of the retry taxonomy's
(`themis.core.retry`):

    outcome of the call                                   kind
    ├── httpx.TimeoutException (connect, read, write)     timeout
    ├── httpx.TransportError (refused, reset, dropped)    connection
    ├── HTTP 4xx / 5xx                                    classify_status(status, body):
    │                                                       rate_limit, server, timeout (408),
    │                                                       retryable (409), auth, bad_request,
    │                                                       context_length, content_filter,
    │                                                       quota_exhausted
    └── 2xx whose body is not the API's JSON              server (retryable; "malformed ...")

A server's wait hint (`Retry-After` seconds or date, `retry-after-ms`, `x-ratelimit-reset-*`)
travels as `retry_after_s`; the HTTP status as `status`. Messages are one line, at most a few
hundred characters, with every resolved secret replaced by `***`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import trio
from attrs import frozen

from themis.adapters.json_text import compact_encoder
from themis.adapters.models.h1 import H1Pool
from themis.core.endpoint import Endpoint, MissingVariable, references, substitute
from themis.core.errors import ConfigError
from themis.core.generation import ModelCallError, ModelResponse
from themis.core.planner import ModelRequest
from themis.core.retry import FailureKind, classify_status, retry_after_from_headers
from themis.ports.clock import ClockPort
from themis.ports.model import BeforeSend
from themis.versions import installed_version

if TYPE_CHECKING:
    import httpx

    from themis.adapters.models.pool import ClientPool

__all__ = ["HttpModel", "MalformedResponse", "PoolLimits", "int_or_none", "str_or_none"]


_USER_AGENT = f"themis/{installed_version('themis') or 'dev'}"
_DETAIL_CHARS = 300
# A request body as JSON (built once: `json.dumps` with options builds an encoder per call).
_ENCODE_BODY = compact_encoder(ensure_ascii=False, allow_nan=False)
_HINT_CHARS = 4000
# A path that needs no percent-encoding (RFC 3986 path characters, no `%`).
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")


class MalformedResponse(ValueError):
    """A 2xx body that is not what the API documents (raised by parsers, mapped to `server`)."""


def int_or_none(value: Any) -> int | None:
    """A token count from a response body, or `None` when absent or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@frozen
class PoolLimits:
    """How many connections an adapter keeps to its endpoint (`size`), and the socket timeout
    of each (`None`: none; the interpreter's call watch bounds every call)."""

    size: int
    timeout: float | None


class HttpModel:
    """A `ModelPort` over HTTP; subclasses say how to build a request and read its answer.

    The key is `endpoint.api_key` (the composition root fills in a built-in provider's default).
    """

    default_base_url: ClassVar[str] = ""
    default_paths: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        provider: str,
        endpoint: Endpoint,
        *,
        clock: ClockPort,
        pool: PoolLimits,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.base_url = (endpoint.base_url or self.default_base_url).rstrip("/")
        if not self.base_url:
            raise ConfigError(f"runtime.endpoints.{provider}.base_url: required for this provider")
        self.api_key = endpoint.api_key
        self.max_connections = pool.size
        self.timeout = pool.timeout
        self._clock = clock
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._transport = transport  # tests only (httpx.MockTransport); None: the network
        self._pools: dict[trio.lowlevel.TrioToken, ClientPool | H1Pool] = {}
        self._ssl_context: ssl.SSLContext | None = None  # built once: loading CAs takes ~14 ms
        # Plain http:// (local servers) goes through the lean HTTP/1.1 client of `h1`.
        origin = urlsplit(self.base_url)
        self._lean = (
            transport is None
            and not endpoint.http2
            and origin.scheme == "http"
            and origin.hostname is not None
            and origin.username is None  # credentials in the URL: httpx sends them
        )
        self._host = origin.hostname or ""
        self._port = origin.port or 80
        # The lean client's request head per API, when no header reads the environment.
        self._heads: dict[str, bytes] = {}
        self._constant_headers = not self.variables()

    @property
    def stops_own_calls(self) -> bool:
        """Whether a caller may stop this model's calls through `stop_by` instead of a cancel
        scope (`SendTimedModelPort`, ADR 0038): the lean client's calls, which wait on a socket
        that can be closed under them."""
        return self._lean

    # --- secrets --------------------------------------------------------------------------------

    def variables(self) -> tuple[str, ...]:
        """The environment variables this adapter reads at every call."""
        names = references(self.api_key or "")
        for text in self.endpoint.headers.values():
            names += references(text)
        return tuple(dict.fromkeys(names))

    def check_environment(self) -> None:
        """`ConfigError` (one line) naming the first referenced variable that is not set."""
        for name in self.variables():
            if not self._environ.get(name):
                raise self._missing(name)

    def _missing(self, name: str) -> ConfigError:
        field = "api_key" if self.api_key == f"${{{name}}}" else "headers"
        return ConfigError(
            f"runtime.endpoints.{self.provider}.{field}: environment variable {name} is not set "
            f"(the {self.provider} provider needs it to authenticate)"
        )

    def _resolve(self, text: str) -> str:
        try:
            return substitute(text, lambda name: self._environ.get(name) or None)
        except MissingVariable as missing:
            raise self._missing(missing.name) from None

    def resolved_headers(self) -> dict[str, str]:
        """The endpoint's extra headers with their references resolved (done at call time)."""
        return {name: self._resolve(value) for name, value in self.endpoint.headers.items()}

    def resolved_key(self) -> str | None:
        return None if self.api_key is None else self._resolve(self.api_key)

    def redact(self, text: str) -> str:
        """`text` with the value of every variable this adapter references replaced by `***`."""
        for name in self.variables():
            value = self._environ.get(name)
            if value and len(value) >= 4:
                text = text.replace(value, "***")
        return text

    # --- the client ------------------------------------------------------------------------------

    def url(self, api: str) -> str:
        return self.base_url + (self.endpoint.path or self.default_paths[api])

    def _make_client(self, connections: int) -> httpx.AsyncClient:
        import httpx

        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
        return httpx.AsyncClient(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            # Calls wait for a pooled connection as long as needed: the run's limiters already
            # bound how many are in flight, so that wait is never a failure.
            timeout=httpx.Timeout(self.timeout, pool=None),
            http2=self.endpoint.http2,
            headers={"user-agent": _USER_AGENT},
            follow_redirects=False,
            trust_env=False,
            verify=self._ssl_context,
            transport=self._transport,
        )

    def _pool(self) -> ClientPool | H1Pool:
        token = trio.lowlevel.current_trio_token()
        pool = self._pools.get(token)
        if pool is None:
            if self._lean:
                pool = H1Pool(
                    self._host,
                    self._port,
                    size=self.max_connections,
                    timeout=self.timeout,
                    headers=[(b"user-agent", _USER_AGENT.encode()), (b"accept", b"*/*")],
                )
            else:
                from themis.adapters.models.pool import ClientPool

                pool = ClientPool(self.max_connections, self._make_client)
            self._pools[token] = pool
            trio.lowlevel.spawn_system_task(
                self._close_when_run_ends, token, pool, name=f"close {self.provider} clients"
            )
        return pool

    async def _close_when_run_ends(
        self, token: trio.lowlevel.TrioToken, pool: ClientPool | H1Pool
    ) -> None:
        """A system task: trio cancels it when the run's main task ends; it then closes the pool."""
        try:
            await trio.sleep_forever()
        finally:
            self._pools.pop(token, None)
            # A system task must not raise; the sockets are closed whatever aclose reports.
            with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                await pool.aclose()

    def close(self) -> None:
        """Nothing to do outside a run: each run's pool is closed when that run ends."""

    # --- one call --------------------------------------------------------------------------------

    def request_headers(self) -> dict[str, str]:
        """Headers of one call; subclasses add their authentication."""
        return self.resolved_headers()

    async def post(
        self, api: str, body: Mapping[str, Any], before_send: BeforeSend | None = None
    ) -> Any:
        """POST `body` as JSON to the `api` path; the decoded JSON of a 2xx answer.

        `before_send` is awaited right before the request is written, with its connection open
        (`SendTimedModelPort`). Every other outcome raises `ModelCallError` (see the module
        docstring).
        """
        try:
            pool = self._pool()
            if isinstance(pool, H1Pool):
                # `_lean_post` inline: no coroutine of its own between the caller and its socket
                answer = await pool.send(
                    self._lean_head(pool, api), _ENCODE_BODY(body).encode(), before_send
                )
                status, content = answer.status, answer.content
                # only the body is read of a 2xx answer (the common case)
                headers = _NO_HEADERS if status < 300 else _header_map(answer.headers)
            else:
                request_headers = self.request_headers()
                with pool.lease() as client:
                    response = await client.post(
                        self.url(api),
                        json=body,
                        headers=request_headers,
                        extensions=await self._sending(before_send),
                    )
                status, content, headers = response.status_code, response.content, response.headers
        except ConfigError:
            raise
        except Exception as error:
            failure = self._transport_failure(error)
            if failure is None:
                raise
            raise failure from None
        if status >= 300:
            if status >= 400:
                raise self._status_failure(status, content, headers)
            # redirects are not followed: the base URL is wrong
            location = headers.get("location", "?")
            raise self._failure(
                FailureKind.BAD_REQUEST,
                f"HTTP {status} redirect to {location}: set the endpoint's "
                "base_url to the address that answers",
                status=status,
            )
        try:
            if content[:1] == b"{" and content[1:2] != b"\x00":  # UTF-8 (RFC 8259), no BOM
                return _json_object(content.decode())
            return json.loads(content)
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            raise self._failure(
                FailureKind.SERVER,
                f"malformed response: HTTP {status} with a body that is not JSON ({error})",
                status=status,
            ) from None

    def _transport_failure(self, error: Exception) -> ModelCallError | None:
        """The `timeout` or `connection` failure an httpx error (or the lean client's, of the
        same types) means; `None` for any other exception. httpx is imported here, not with
        the module: a lean client whose calls succeed never needs it (`h1`)."""
        import httpx

        if isinstance(error, httpx.TimeoutException):
            return self._failure(FailureKind.TIMEOUT, f"no answer in time ({type(error).__name__})")
        if isinstance(error, httpx.TransportError):
            message = f"{type(error).__name__}: {error}".rstrip(": ")
            return self._failure(FailureKind.CONNECTION, message)
        return None

    async def _sending(self, before_send: BeforeSend | None) -> dict[str, Any]:
        """httpx extensions that await `before_send` as httpcore starts writing the request
        (its `trace` hook), once. An injected transport other than httpx's own (a test's
        `MockTransport`) has no httpcore below it: the hook is awaited here instead."""
        import httpx

        if before_send is None:
            return {}
        if self._transport is not None and not isinstance(
            self._transport, httpx.AsyncHTTPTransport
        ):
            await before_send()
            return {}
        pending = [before_send]

        async def trace(event: str, info: Mapping[str, Any]) -> None:
            if pending and event.endswith(".send_request_headers.started"):
                await pending.pop()()

        return {"trace": trace}

    def _lean_head(self, pool: H1Pool, api: str) -> bytes:
        """The lean client's request head for `api`.

        Built once per API when no header reads the environment (the common case: a local
        server without a key); otherwise at every call, as secrets are. No httpx here, not even
        for an error answer (`post`): importing it mid-run blocks every call for tens of
        milliseconds (hundreds on a loaded machine) at the first failure.
        """
        head = self._heads.get(api)
        if head is None:
            target = _target(self.url(api))
            headers = self.request_headers()
            head = pool.head(
                target,
                [
                    (b"content-type", b"application/json"),
                    *((name.encode(), value.encode()) for name, value in headers.items()),
                ],
            )
            if self._constant_headers:
                self._heads[api] = head
        return head

    def malformed(self, problem: str) -> ModelCallError:
        """The error for a 2xx JSON body without the fields the API promises."""
        return self._failure(FailureKind.SERVER, f"malformed response: {problem}")

    def _failure(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> ModelCallError:
        text = " ".join(self.redact(f"{self.provider}: {message}").split())
        return ModelCallError(str(kind), text, status=status, retry_after_s=retry_after_s)

    def _status_failure(
        self, status: int, content: bytes, headers: Mapping[str, str]
    ) -> ModelCallError:
        body = content[:_HINT_CHARS].decode("utf-8", errors="replace")
        kind = classify_status(status, body) if status <= 599 else FailureKind.SERVER
        detail = _error_detail(body)
        return self._failure(
            kind,
            f"HTTP {status}" + (f": {detail}" if detail else ""),
            status=status,
            retry_after_s=retry_after_from_headers(headers, self._clock.now()),
        )

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return await self.generate_sent(request, None)

    async def generate_sent(
        self, request: ModelRequest, before_send: BeforeSend | None
    ) -> ModelResponse:
        """`generate`, awaiting `before_send` right before the request leaves
        (`SendTimedModelPort`); each API's adapter says how to ask and how to read the answer."""
        raise NotImplementedError


_NO_HEADERS: Mapping[str, str] = {}
# `json.loads`'s own scanner (the C one), which `JSONDecoder` sets without declaring it.
_ScanJson = Callable[[str, int], tuple[Any, int]]
_SCAN_JSON: _ScanJson = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _json_object(text: str) -> Any:
    """`json.loads(text)` of a text that starts with `{`: the C scanner called at once when the
    object ends the text (an answer's common case), without `loads`'s checks and its two
    whitespace matches (~2 us an answer, ADR 0081); anything else, errors included, by
    `json.loads` itself, so every outcome and message is its."""
    if text[-1:] == "}":
        try:
            value, end = _SCAN_JSON(text, 0)
        except (ValueError, StopIteration):  # the scanner's "no value here" is a StopIteration
            end = -1
        if end == len(text):
            return value
    return json.loads(text)


def _header_map(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """An answer's headers by lower-case name, repeated ones joined by ", " (as httpx's
    `Headers.get` does), `transfer-encoding` left out."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name != "transfer-encoding":
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _target(url: str) -> bytes:
    """The request target of `url` (path and query), percent-encoded as httpx encodes it."""
    path = urlsplit(url).path or "/"
    if "?" not in url and "#" not in url and _PLAIN_TARGET.fullmatch(path):
        return path.encode("ascii")
    import httpx

    return httpx.URL(url).raw_path


def _error_detail(body: str) -> str:
    """The human part of an error body: `error.message` (OpenAI, Anthropic) or its first chars."""
    detail = body
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping):
            parts = [str(error.get(key)) for key in ("type", "code") if error.get(key)]
            message = str(error.get("message") or "")
            detail = f"{message} ({', '.join(parts)})" if parts else message
        elif isinstance(error, str):
            detail = error
        elif isinstance(data.get("message"), str):
            detail = data["message"]
    detail = " ".join(detail.split())
    return detail if len(detail) <= _DETAIL_CHARS else detail[: _DETAIL_CHARS - 3] + "..."

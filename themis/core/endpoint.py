"""Where a provider is reached over HTTP, and how secrets are referenced. Runtime only.

An `Endpoint` (one per provider, in `[runtime.endpoints.NAME]`) says where calls go and how they
authenticate; it never changes what a model answers, so it never changes `run_id`. What does
change answers (the model id, which API of the provider is called, the sampling parameters and
vendor body fields) lives in `ModelSpec`.

`headers` may not set `Host`, `Content-Length`, `Transfer-Encoding` or `Connection`: the HTTP
client writes those itself. Secrets are never written down: `api_key` must be exactly one
`${ENV_VAR}` reference, and a header whose name looks like a credential must take its value
from one. The HTTP adapters resolve the references when they make a call, so the store, the
snapshot and every report only ever hold the references.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from attrs import field, frozen

from themis.core.validation import check_bool, check_non_empty

__all__ = [
    "API_NAMES",
    "RESERVED_HEADERS",
    "Endpoint",
    "MissingVariable",
    "is_reference",
    "references",
    "substitute",
]

API_NAMES = ("chat", "completions", "messages")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(r"\$\{(" + _NAME + r")\}")
# Header names that carry credentials; their values must come from `${ENV_VAR}` references.
_SECRET_WORDS = ("authorization", "api-key", "api_key", "apikey", "token", "secret", "cookie")
# Header names that frame the message or name the origin: the HTTP client writes them itself, and
# a second copy from the config would make a request with duplicate or conflicting framing.
RESERVED_HEADERS = ("host", "content-length", "transfer-encoding", "connection")


class MissingVariable(LookupError):
    """A `${NAME}` reference to an environment variable that is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def references(text: str) -> tuple[str, ...]:
    """The environment variable names `text` refers to as `${NAME}`, in order."""
    return tuple(_REFERENCE.findall(text))


def is_reference(text: str) -> bool:
    """Whether `text` is exactly one `${NAME}` reference."""
    return _REFERENCE.fullmatch(text) is not None


def substitute(text: str, lookup: Callable[[str], str | None]) -> str:
    """`text` with every `${NAME}` replaced by `lookup(NAME)`; `MissingVariable` if one is unset."""

    def replace(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None:
            raise MissingVariable(match.group(1))
        return value

    return _REFERENCE.sub(replace, text)


def _check_base_url(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not re.match(r"https?://[^/\s]+", value) or " " in value:
        raise ValueError(
            f"{attribute.name}: must be an http:// or https:// URL such as "
            f"'http://127.0.0.1:8000/v1', got {value!r}"
        )
    if references(value):
        raise ValueError(f"{attribute.name}: may not contain ${{...}} references")


def _check_path(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value.startswith("/")):
        raise ValueError(f"{attribute.name}: must start with '/', got {value!r}")


def _check_api_key(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    # The value is never echoed: it may be the very secret that must not be written down.
    if value is not None and (not isinstance(value, str) or not is_reference(value)):
        raise ValueError(
            f"{attribute.name}: must name an environment variable as '${{NAME}}' (for example "
            "'${OPENAI_API_KEY}'), never the key itself; the value given is not a reference"
        )


def _secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _check_headers(
    instance: Any, attribute: attrs.Attribute[Any], value: Mapping[str, str]
) -> None:
    for name, text in value.items():
        if not isinstance(text, str):
            raise ValueError(f"{attribute.name}.{name}: must be a string")
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            raise ValueError(f"{attribute.name}: {name!r} is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(
                f"{attribute.name}.{name}: reserved, Themis writes this header itself "
                "(Host, Content-Length, Transfer-Encoding and Connection may not be set)"
            )
        if _secret_header(name) and not references(text):
            raise ValueError(
                f"{attribute.name}.{name}: a credential header must take its secret from an "
                "environment variable, e.g. 'Bearer ${MY_TOKEN}'; the value given has no "
                "${...} reference"
            )


def _headers(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


@frozen
class Endpoint:
    """How to reach one provider: URL, credentials by reference, extra headers, transport.

    `base_url` and `path` default per provider and API (OpenAI: `https://api.openai.com/v1` +
    `/chat/completions` or `/completions`; Anthropic: `https://api.anthropic.com` +
    `/v1/messages`). `api_key` defaults to `${OPENAI_API_KEY}` / `${ANTHROPIC_API_KEY}` for the
    built-in providers and to no key otherwise. `http2` needs the optional `h2` package.
    """

    base_url: str | None = field(default=None, validator=_check_base_url)
    path: str | None = field(default=None, validator=_check_path)
    api_key: str | None = field(default=None, validator=_check_api_key)
    headers: Mapping[str, str] = field(factory=dict, converter=_headers, validator=_check_headers)
    anthropic_version: str = field(default="2023-06-01", validator=check_non_empty)
    http2: bool = field(default=False, validator=check_bool)

    def variables(self) -> tuple[str, ...]:
        """Every environment variable this endpoint refers to, each once, in order."""
        names = references(self.api_key or "")
        for text in self.headers.values():
            names += references(text)
        return tuple(dict.fromkeys(names))

"""Compact JSON text for the hot paths (event payloads, checkpoints, request bodies).

`json.JSONEncoder.encode` builds a new C encoder on every call, with a dict for its circular
check; for payloads of a few hundred bytes that setup is ~40% of the call. `compact_encoder`
builds the C encoder once, without the check (the values encoded are trees of attrs-unstructured
data and request bodies: never circular), and returns text identical to
`json.JSONEncoder(separators=(",", ":"), ensure_ascii=..., allow_nan=...).encode`.
"""

from __future__ import annotations

from _json import make_encoder
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any

__all__ = ["compact_encoder"]


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def compact_encoder(*, ensure_ascii: bool = True, allow_nan: bool = True) -> Callable[[Any], str]:
    """A function turning a JSON-able dict or list into compact JSON text (see the docstring)."""
    strings = _encoder.encode_basestring_ascii if ensure_ascii else _encoder.encode_basestring
    chunks = make_encoder(None, _unserialisable, strings, None, ":", ",", False, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode

"""Provider batch files: a run's pending requests as an OpenAI Batch API input file or an
Anthropic Message Batches request list, and the answers read back from the provider's output.

Both are JSON lines, one request per line, whose `custom_id` is the trial key:
- OpenAI: `{"custom_id", "method": "POST", "url": "/v1/chat/completions" (or `/v1/completions`),
  "body"}`, the body the HTTP adapter would send; the output's lines are `{"custom_id",
  "response": {"status_code", "body"}, "error"}`.
- Anthropic: `{"custom_id", "params"}`, the Messages API body (a `requests` list of these is what
  the create-batch call takes); the results' lines are `{"custom_id", "result": {"type":
  "succeeded", "message"}}` (or `errored`, `canceled`, `expired`).
An answer that failed at the provider is returned as a failure, not an answer: its trial stays
pending and a later run (or batch) makes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from attrs import field, frozen

from themis.adapters.models import anthropic, openai
from themis.adapters.models.http import MalformedResponse
from themis.core.bundles import BundleError
from themis.core.generation import ModelResponse
from themis.core.planner import ModelRequest

__all__ = ["BATCH_FORMATS", "BatchOutput", "read_batch_output", "write_batch_requests"]

BATCH_FORMATS: Final = ("openai", "anthropic")
_URLS: Final = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


@frozen
class BatchOutput:
    """The answers of a batch output file by trial key, and why the others failed."""

    answers: Mapping[str, ModelResponse] = field(factory=dict)
    failures: Mapping[str, str] = field(factory=dict)


def _line(request: ModelRequest, batch_format: str) -> dict[str, Any]:
    if batch_format == "anthropic":
        return {"custom_id": request.trial_key, "params": anthropic.build_body(request)}
    api = request.api or "chat"
    return {
        "custom_id": request.trial_key,
        "method": "POST",
        "url": _URLS[api],
        "body": openai.build_body(request, api),
    }


def write_batch_requests(path: Path, requests: Sequence[ModelRequest], batch_format: str) -> int:
    """Write one line per request; refuses to replace an existing file. The lines written."""
    if path.exists():
        raise BundleError(f"{path}: already exists; choose a new path")
    text = "".join(json.dumps(_line(request, batch_format)) + "\n" for request in requests)
    try:
        path.write_text(text)
    except OSError as error:
        raise BundleError(f"{path}: cannot write: {error.strerror}") from None
    return len(requests)


def _openai_answer(row: Mapping[str, Any], api: str) -> ModelResponse | str:
    if row.get("error"):
        return f"error: {json.dumps(row['error'])[:200]}"
    response = row.get("response")
    if not isinstance(response, Mapping):
        raise MalformedResponse("no response")
    status = response.get("status_code")
    if status != 200:
        return f"status {status}"
    return openai.parse_choices(response.get("body"), api)[0]


def _anthropic_answer(row: Mapping[str, Any]) -> ModelResponse | str:
    result = row.get("result")
    if not isinstance(result, Mapping):
        raise MalformedResponse("no result")
    if result.get("type") != "succeeded":
        return f"{result.get('type')}: {json.dumps(result.get('error'))[:200]}"
    return anthropic.parse_message(result.get("message"))


def read_batch_output(path: Path, batch_format: str, apis: Mapping[str, str]) -> BatchOutput:
    """The answers in a provider's output file; `apis` maps each trial key the run expects to
    its request's API (`chat`, `completions`, `messages`). `BundleError` names the line of a
    row that is not the provider's format or whose `custom_id` the run does not expect."""
    answers: dict[str, ModelResponse] = {}
    failures: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: cannot read: {error}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = row["custom_id"]
            if key not in apis:
                raise BundleError(
                    f"{path}: line {number}: custom_id {str(key)[:40]!r} is not a pending "
                    "request of this run"
                )
            if batch_format == "anthropic":
                answer = _anthropic_answer(row)
            else:
                answer = _openai_answer(row, apis[key])
        except (json.JSONDecodeError, KeyError, TypeError, MalformedResponse) as error:
            raise BundleError(
                f"{path}: line {number}: not a {batch_format} batch output row ({error})"
            ) from None
        if isinstance(answer, str):
            failures[key] = answer
        else:
            answers[key] = answer
    return BatchOutput(answers=answers, failures=failures)

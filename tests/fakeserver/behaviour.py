"""What the fake endpoint answers: OpenAI chat/completions and Anthropic messages, with faults.

Answers are a pure function of the request: the last `A op B` arithmetic in the prompt gives
"The answer is N." (else an echo), usage counts words, `max_tokens` truncates (finish `length`),
`stop` cuts, `n` gives `n` choices (choice i > 0 starts with "Choice i: "), the served model is
the requested one unless `served_model` says otherwise. `logprobs` (chat: `true` with
`top_logprobs: k`; completions: `k`) gives each choice's token logprobs with k alternatives per
token, in the API's shape (values: `token_logprobs`).

Faults (a `fault` is `{"kind": "status" | "drop" | "hang" | "malformed" | "delay", ...}`;
`status` takes `status`, `retry_after`, `retry_after_ms`, `headers`, `body`; `delay` and `hang`
take `seconds`), chosen per call, first match wins:
- `outage`: every call fails with its fault until it ends (`{"seconds": s, "fault": {...}}`);
- `script`: FIFO entries `{"fault": {...}, "times": k, "match": "text in the body"}`;
- `rates`: `[{"fault": {...}, "rate": p}]`, drawn from a hash of (seed, request body, attempt)
  so a run is repeatable; `max_faults_per_request` caps the faults one distinct body receives.
  A rule with `"every_attempt": true` is drawn once per body: the bodies it picks fail on every
  attempt, whatever the cap (requests that always fail).
`require_key` turns on authentication (a wrong key is answered 401 echoing the key it got, as
some providers do). Every model call goes to the journal (`GET /_journal`) and `GET /_stats`;
the stats also give the `time.monotonic()` of the first call and of the last answer since
`control(window=True)` (benchmarks split a client's wall with them).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Sized
from typing import Any

from tests.fakeserver.wire import Exchange, Request

__all__ = ["FakeEndpoint", "answer_text", "token_logprobs"]

_EXPR = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x×])\s*(-?\d+(?:\.\d+)?)")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
DEFAULTS: dict[str, Any] = {
    "latency_s": 0.0,
    "served_model": None,
    "system_fingerprint": "fp_themis_fake",
    "rates": [],
    "seed": 0,
    "max_faults_per_request": None,
    "script": [],
    "journal": True,
    "require_key": None,
    "answer": "arith",
}


def _number(text: str) -> float:
    return float(text)


def answer_text(prompt: str, mode: str = "arith") -> str:
    """The fake's answer to `prompt` (see the module docstring)."""
    found = _EXPR.findall(prompt) if mode == "arith" else []
    if not found:
        return "You said: " + " ".join(prompt.split()[-40:])
    left, op, right = found[-1]
    a, b = _number(left), _number(right)
    if op == "+":
        value = a + b
    elif op == "-":
        value = a - b
    elif op in "*x×":
        value = a * b
    else:
        value = a / b if b else math.nan
    shown = str(int(value)) if math.isfinite(value) and value == int(value) else f"{value:g}"
    return f"The answer is {shown}."


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:13], 16) / 16**13


class FakeEndpoint:
    """The fake API's state and behaviour; `handle` is the wire handler."""

    def __init__(self, loop: Any, **settings: Any) -> None:
        self.loop = loop
        self.initial = {**DEFAULTS, **settings}
        # Set by the server once it listens: live connections, and a count of those opened.
        self.connections: Sized = ()
        self.opened = [0]
        self.reset()

    def reset(self) -> None:
        self.settings: dict[str, Any] = json.loads(json.dumps(self.initial))
        self.script: list[dict[str, Any]] = []
        self.outage_until = 0.0
        self.outage_fault: dict[str, Any] = {}
        self.seq = 0
        self.attempts: Counter[str] = Counter()
        self.faults_given: Counter[str] = Counter()
        self.journal: list[dict[str, Any]] = []
        # `time.monotonic()` (one clock for every process of the machine) of the first model
        # call and of the last answer since the window opened (`control(window=True)`).
        self.first_call_at: float | None = None
        self.last_answer_at: float | None = None
        self.outcomes: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    # --- control -------------------------------------------------------------------------------

    def control(self, changes: dict[str, Any]) -> dict[str, Any]:
        for key, value in changes.items():
            if key == "script":
                self.script = [dict(entry) for entry in value]
            elif key == "append_script":
                self.script.extend(dict(entry) for entry in value)
            elif key == "window":  # timing starts again (`stats`' first call, last answer)
                self.first_call_at = self.last_answer_at = None
            elif key == "outage":
                self.outage_until = time.monotonic() + float(value.get("seconds", 0))
                self.outage_fault = dict(value.get("fault") or {"kind": "status", "status": 503})
            elif key in DEFAULTS:
                self.settings[key] = value
            else:
                raise KeyError(key)
        return {**self.settings, "script": self.script}

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.seq,
            "by_path": dict(self.paths),
            "by_outcome": dict(self.outcomes),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "open_connections": len(self.connections),
            "connections_opened": self.opened[0],
            "first_call_at": self.first_call_at,
            "last_answer_at": self.last_answer_at,
        }

    # --- the wire handler ----------------------------------------------------------------------

    def handle(self, request: Request, exchange: Exchange) -> None:
        path = request.path.split("?", 1)[0]
        if request.method == "POST" and path.endswith(("/completions", "/messages")):
            self._model_call(request, path, exchange)
        elif path == "/health":
            exchange.reply(200, b'{"status":"ok"}')
        elif path in ("/_stats", "/stats"):
            exchange.reply(200, _ENCODE(self.stats()).encode())
        elif path == "/_journal":
            since = int(request.path.partition("since=")[2] or 0)
            calls = [entry for entry in self.journal if entry["seq"] > since]
            exchange.reply(200, json.dumps({"calls": calls}).encode())
        elif path == "/_control" and request.method == "POST":
            try:
                exchange.reply(200, json.dumps(self.control(json.loads(request.body))).encode())
            except (KeyError, ValueError, TypeError, AttributeError) as error:
                exchange.reply(400, json.dumps({"error": f"bad control: {error!r}"}).encode())
        elif path == "/_reset" and request.method == "POST":
            self.reset()
            exchange.reply(200, b"{}")
        else:
            exchange.reply(404, b'{"error":{"message":"no such route","type":"not_found"}}')

    def _model_call(self, request: Request, path: str, exchange: Exchange) -> None:
        if self.first_call_at is None:
            self.first_call_at = time.monotonic()
        self.seq += 1
        seq = self.seq
        self.paths[path] += 1
        key = hashlib.sha1(request.body).hexdigest()
        self.attempts[key] += 1
        attempt = self.attempts[key]
        try:
            data = json.loads(request.body)
        except ValueError:
            data = None
        anthropic = path.endswith("/messages")
        fault = self._fault(request, key, attempt) if isinstance(data, dict) else None
        if not isinstance(data, dict):
            fault = {"kind": "status", "status": 400, "body": "invalid JSON body"}
        elif fault is None:
            fault = self._auth_fault(request, anthropic)
        outcome = (
            "ok"
            if fault is None or fault.get("kind") == "delay"
            else str(fault.get("status", fault.get("kind")))
        )
        self.outcomes[outcome] += 1
        if self.settings["journal"]:
            self.journal.append(
                {
                    "seq": seq,
                    "t": time.time(),
                    "path": path,
                    "key": key,
                    "attempt": attempt,
                    "headers": request.headers,
                    "body": data,
                    "outcome": outcome,
                }
            )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        latency = float(self.settings["latency_s"])
        kind = None if fault is None else fault.get("kind", "status")
        if kind == "hang":
            seconds = fault.get("seconds") if fault else None
            if seconds is not None:
                self.loop.call_later(float(seconds), self._finish, exchange, None)
            return
        if kind == "delay" and fault is not None:
            latency += float(fault.get("seconds", 0))
            fault = None
        if fault is None:
            assert isinstance(data, dict)
            body = self._answer(data, path, seq)
            reply: tuple[int, bytes, dict[str, str]] | None = (200, body, {})
        elif kind == "drop":
            reply = None
        elif kind == "malformed":
            reply = (200, b'{"id":"broken","choices":[{"index":0,"mess', {})
        else:
            reply = self._error(fault, anthropic)
        if latency > 0:
            self.loop.call_later(latency, self._finish, exchange, reply)
        else:
            self._finish(exchange, reply)

    def _finish(self, exchange: Exchange, reply: tuple[int, bytes, dict[str, str]] | None) -> None:
        self.in_flight -= 1
        if reply is None:
            exchange.drop()
        else:
            exchange.reply(*reply)
        self.last_answer_at = time.monotonic()

    # --- choosing a fault ----------------------------------------------------------------------

    def _fault(self, request: Request, key: str, attempt: int) -> dict[str, Any] | None:
        if self.outage_until and time.monotonic() < self.outage_until:
            return self.outage_fault
        for entry in self.script:
            match = entry.get("match")
            if match is not None and match.encode() not in request.body:
                continue
            times = int(entry.get("times", 1))
            if times <= 0:
                continue
            entry["times"] = times - 1
            if entry["times"] <= 0:
                self.script.remove(entry)
            fault: dict[str, Any] = entry["fault"]
            return fault
        cap = self.settings["max_faults_per_request"]
        capped = cap is not None and self.faults_given[key] >= cap
        for index, rule in enumerate(self.settings["rates"]):
            every = bool(rule.get("every_attempt"))
            if capped and not every:
                continue
            draw = _fraction(self.settings["seed"], index, key, "all" if every else attempt)
            if draw < float(rule["rate"]):
                self.faults_given[key] += 1
                chosen: dict[str, Any] = rule["fault"]
                return chosen
        return None

    def _auth_fault(self, request: Request, anthropic: bool) -> dict[str, Any] | None:
        if anthropic and "anthropic-version" not in request.headers:
            return {"kind": "status", "status": 400, "body": "anthropic-version header required"}
        required = self.settings["require_key"]
        if required is None:
            return None
        given = (
            request.headers.get("x-api-key", "")
            if anthropic
            else request.headers.get("authorization", "").removeprefix("Bearer ")
        )
        if given == required:
            return None
        return {
            "kind": "status",
            "status": 401,
            "body": f"Incorrect API key provided: {given}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
        }

    def _error(self, fault: dict[str, Any], anthropic: bool) -> tuple[int, bytes, dict[str, str]]:
        status = int(fault.get("status", 500))
        headers = {str(k): str(v) for k, v in (fault.get("headers") or {}).items()}
        if fault.get("retry_after") is not None:
            headers["retry-after"] = str(fault["retry_after"])
        if fault.get("retry_after_ms") is not None:
            headers["retry-after-ms"] = str(fault["retry_after_ms"])
        body = fault.get("body")
        if isinstance(body, dict):
            return status, json.dumps(body).encode(), headers
        message = body if isinstance(body, str) else f"injected HTTP {status}"
        error_type = {429: "rate_limit_error", 401: "authentication_error"}.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        if anthropic:
            document: dict[str, Any] = {
                "type": "error",
                "error": {"type": error_type, "message": message},
            }
        else:
            document = {"error": {"message": message, "type": error_type, "code": None}}
        return status, json.dumps(document).encode(), headers

    # --- answers -------------------------------------------------------------------------------

    def _answer(self, data: dict[str, Any], path: str, seq: int) -> bytes:
        anthropic = path.endswith("/messages")
        if path.endswith("/chat/completions") or anthropic:
            messages = data.get("messages") or []
            texts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
            users = [
                str(m.get("content", ""))
                for m in messages
                if isinstance(m, dict) and m.get("role") == "user"
            ]
            prompt = users[-1] if users else ""
            prompt_words = sum(len(text.split()) for text in texts) + len(
                str(data.get("system", "")).split()
            )
        else:
            prompt = str(data.get("prompt", ""))
            prompt_words = len(prompt.split())
        base = answer_text(prompt, self.settings["answer"])
        count = int(data.get("n") or 1)
        stops = data.get("stop_sequences" if anthropic else "stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        limit = int(data.get("max_tokens") or 1 << 30)
        choices, output = [], 0
        for index in range(count):
            text = base if index == 0 else f"Choice {index}: {base}"
            finish = "stop"
            for stop in stops:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            words = text.split()
            if len(words) > limit:
                text, finish = " ".join(words[:limit]), "length"
            output += len(text.split())
            choices.append((text, finish))
        model = self.settings["served_model"] or data.get("model", "fake")
        if anthropic:
            text, finish = choices[0]
            document: dict[str, Any] = {
                "id": f"msg_{seq:08d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if finish == "length" else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_words, "output_tokens": output},
            }
            return _ENCODE(document).encode()
        chat = path.endswith("/chat/completions")
        document = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{seq:08d}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": self.settings["system_fingerprint"],
            "choices": [
                {
                    "index": index,
                    **(
                        {"message": {"role": "assistant", "content": text}}
                        if chat
                        else {"text": text}
                    ),
                    "finish_reason": finish,
                    "logprobs": _logprobs(text, chat, data),
                }
                for index, (text, finish) in enumerate(choices)
            ],
            "usage": {
                "prompt_tokens": prompt_words,
                "completion_tokens": output,
                "total_tokens": prompt_words + output,
            },
        }
        return _ENCODE(document).encode()


def _logprobs(text: str, chat: bool, data: dict[str, Any]) -> dict[str, Any] | None:
    """The answer's logprobs when asked (`None` otherwise): see `token_logprobs`."""
    asked = data.get("logprobs")
    if chat and asked is not True:
        return None
    if not chat and (isinstance(asked, bool) or not isinstance(asked, int)):
        return None
    top = int(data.get("top_logprobs") or 0) if chat else asked
    tokens = token_logprobs(text, top)
    if chat:
        return {
            "content": [
                {
                    "token": token,
                    "logprob": logprob,
                    "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alternatives],
                }
                for token, logprob, alternatives in tokens
            ]
        }
    return {
        "tokens": [token for token, _, _ in tokens],
        "token_logprobs": [logprob for _, logprob, _ in tokens],
        "top_logprobs": [dict(alternatives) for _, _, alternatives in tokens],
    }


def token_logprobs(text: str, top: int) -> list[tuple[str, float, list[tuple[str, float]]]]:
    """The fake's `(token, logprob, alternatives)` for `text`: a token is a word with the spaces
    before it (so they join back into `text`), logprob -0.25 at every position; the `top`
    alternatives are the token itself (-0.25), then `<alt1>` (-1.5), `<alt2>` (-2.5), ..."""
    alternatives = [(f"<alt{i}>", -0.5 - i) for i in range(1, top)]
    return [
        (token, -0.25, [(token, -0.25), *alternatives][:top])
        for token in re.findall(r"\s*\S+", text)
    ]

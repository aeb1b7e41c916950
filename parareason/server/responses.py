"""From a finished request (Result + the observed chosen sample) to OpenAI payloads.

`usage` counts every thread of the request: prompt_tokens are the context tokens of
every backend run (as the backend reported them; shared prefixes are counted per
thread, `parareason.usage.cached_tokens` says how many were reused), completion_tokens
all generated tokens. The `parareason` detail object carries the rest.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from parareason.runtime.result import Result
from parareason.server.observe import ObservedPolicy
from parareason.server.routing import Route
from parareason.server.schemas import UsageInfo

# Policies name their saved-token estimate differently; the detail object has one key.
_SAVED_KEYS = ("tokens_saved_estimate", "tokens_saved_est", "tokens_saved")


def error_body(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI-style error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_of(result: Result) -> UsageInfo:
    prompt = int(result.usage.get("prompt_tokens", 0))
    completion = int(result.usage.get("generated_tokens", 0))
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def finish_reason(observer: ObservedPolicy) -> str:
    """'length' when the chosen sample was cut by max_tokens or a limit, else 'stop'."""
    s = observer.chosen
    if s is None:
        return "stop"
    reason = getattr(s, "end_reason", None) or ""
    return "length" if s.status == "limit" or reason == "length" or reason.startswith("limit:") else "stop"


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def detail(result: Result, observer: ObservedPolicy, route: Route) -> dict[str, Any]:
    """The `parareason` object: answer, per-thread status, votes, tokens saved, full usage."""
    saved = next((result.details[k] for k in _SAVED_KEYS if k in result.details), None)
    return _jsonable({
        "request_id": result.id,
        "answer": result.answer,
        "policy": result.policy,
        "protocol": result.protocol,
        "n": route.n,
        "budget": route.budget,
        "chosen_sample": observer.chosen.id if observer.chosen is not None else None,
        "threads": [asdict(t) for t in result.threads],
        "votes": result.details.get("votes"),
        "tokens_saved": saved,
        "usage": result.usage,
        "latency_s": result.latency_s,
        "error": result.error,
        "details": result.details,
    })

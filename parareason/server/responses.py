"""From a finished request (Result + the observed chosen sample) to OpenAI payloads.

`usage` counts every thread of every sample of the request: prompt_tokens are the
context tokens of every backend run (as the backend reported them; shared prefixes
are counted per thread, `prompt_tokens_details.cached_tokens` says how many were
reused), completion_tokens all generated tokens. The `parareason` detail object
carries the rest. `system_fingerprint` identifies the server's configuration.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from parareason.runtime.result import Result
from parareason.runtime.status import Status
from parareason.server.observe import ObservedPolicy
from parareason.server.routing import Route, ServeDefaults
from parareason.server.schemas import PromptTokensDetails, UsageInfo

# Policies name their saved-token estimate differently; the detail object has one key.
_SAVED_KEYS = ("tokens_saved_estimate", "tokens_saved_est", "tokens_saved")


def error_body(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI-style error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_of(result: Result) -> UsageInfo:
    prompt = int(result.usage.get("prompt_tokens", 0))
    completion = int(result.usage.get("generated_tokens", 0))
    cached = PromptTokensDetails(cached_tokens=int(result.usage.get("cached_tokens", 0)))
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                     prompt_tokens_details=cached)


def system_fingerprint(defaults: ServeDefaults, backend: object) -> str:
    """`fp_` + a hash of what decides the answers: the server's defaults and limits, the
    backend and its tokenizer. Same configuration, same fingerprint."""
    tokenizer = getattr(backend, "tokenizer", None)
    config = {"defaults": asdict(defaults), "backend": getattr(backend, "name", type(backend).__name__),
              "tokenizer": getattr(tokenizer, "name", None),
              "dtype": str(getattr(getattr(backend, "model", None), "dtype", None)),
              **({"weights": w} if (w := getattr(getattr(backend, "model", None), "weights", "full")) != "full" else {})}
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return "fp_" + hashlib.sha256(blob).hexdigest()[:12]


def finish_reason(observer: ObservedPolicy) -> str:
    """'length' when the chosen sample was cut by max_tokens or a limit, else 'stop'."""
    s = observer.chosen
    if s is None:
        return "stop"
    reason = getattr(s, "end_reason", None) or ""
    return "length" if s.status == Status.LIMIT or reason == "length" or reason.startswith("limit:") else "stop"


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
        "omitted_threads": result.omitted_threads,
        "votes": result.details.get("votes"),
        "tokens_saved": saved,
        "usage": result.usage,
        "latency_s": result.latency_s,
        "error": result.error,
        "details": result.details,
    })

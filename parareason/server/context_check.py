"""Refuse a prompt that does not fit the backend's context, before it is scheduled.

Without this check a too-long prompt reached the backend, every thread failed, and
the client got a 200 with empty content. The prompt is counted exactly as the
runtime will send it (the protocol's messages through the tokenizer's chat
template, request_run.py `prompt_ids`), and compared with the backend's context:
`Backend.context_length` (the embedded engine's positions, SGLang's `/server_info`
context length, vLLM's `max_model_len`). A backend that states no limit is not
checked here (its own error then fails the request with a 500).
"""
from __future__ import annotations

from typing import Any

from parareason.runtime.protocols import get_protocol
from parareason.runtime.request import RequestSpec
from parareason.server.routing import RoutingError


def context_limit(backend: Any) -> int | None:
    """Tokens of context the backend can hold, if it says."""
    limit = getattr(backend, "context_length", None)  # test doubles need not be Backends
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def context_error(tokens: int, limit: int, *, param: str = "messages", room: int = 1) -> RoutingError:
    return RoutingError(f"the prompt is {tokens} tokens; this model's context is {limit} tokens"
                        + (" (and at least one must be left to generate)" if room else ""),
                        param=param, code="context_length_exceeded")


def prompt_tokens(backend: Any, spec: RequestSpec) -> int:
    msgs = get_protocol(spec.protocol, **spec.protocol_config).messages(spec.prompt, spec.system_prompt)
    return len(backend.tokenizer.chat_ids(msgs, add_generation_prompt=True))


def check_context(backend: Any, spec: RequestSpec, param: str) -> None:
    """400 `context_length_exceeded` when the prompt leaves no position to generate in."""
    limit = context_limit(backend)
    if limit is None:
        return
    n = prompt_tokens(backend, spec)
    if n >= limit:
        raise context_error(n, limit, param=param)

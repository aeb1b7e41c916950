"""OpenAI request fields that parareason serve refuses instead of ignoring.

A client that sends `tools` expects a tool call, one that sends `response_format:
json_object` expects JSON, one that sends penalties or `logit_bias` expects a changed
distribution: ignoring them would return plain text that silently breaks that
contract. So each is refused with a 400 naming the field, unless its value is the
no-op one (an empty list, `tool_choice: "none"`, `response_format: {"type": "text"}`,
a penalty of 0), which many clients send by default.

Why refused and not implemented: penalties and `logit_bias` change the sampler of
every backend (the embedded sampler, SGLang's request, the replay and scripted
doubles would all need them, and a recording replays only the distribution it was
recorded with); JSON mode needs constrained decoding, and a parallel-reasoning
policy votes over `\\boxed{}` answers, which a JSON object does not have. See
docs/serve.md.
"""
from __future__ import annotations

from typing import Any, Callable

from parareason.server.routing import RoutingError


def _empty(v: Any) -> bool:
    return v is None or v == [] or v == {}


def _zero(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)


def _no_tool_choice(v: Any) -> bool:
    return v is None or v in ("none", "auto")


def _text_format(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and v.get("type") == "text")


# field -> (is the value harmless?, why it is refused)
REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "tools": (_empty, "tool calls are not supported"),
    "functions": (_empty, "function calls are not supported"),
    "tool_choice": (_no_tool_choice, "tool calls are not supported"),
    "function_call": (_no_tool_choice, "function calls are not supported"),
    "response_format": (_text_format, 'only {"type": "text"} is supported (no JSON mode or schemas)'),
    "presence_penalty": (_zero, "penalties are not supported; only 0 is accepted"),
    "frequency_penalty": (_zero, "penalties are not supported; only 0 is accepted"),
    "logit_bias": (_empty, "logit_bias is not supported"),
}


def refuse_unsupported(extra: dict[str, Any] | None) -> None:
    """Raise a 400 for the first field in `extra` (the request's undeclared fields)
    whose value would change the answer."""
    for name, value in (extra or {}).items():
        rule = REFUSED.get(name)
        if rule is not None and not rule[0](value):
            raise RoutingError(f"{name}: {rule[1]} by parareason serve", param=name, code="unsupported_parameter")

"""Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.

Chat streams send `chat.completion.chunk` objects: a first chunk with the assistant
role, content deltas, a last chunk with `finish_reason` and the `parareason` detail
object, an optional usage chunk (`stream_options.include_usage`), then `[DONE]`.
Completion streams send `text_completion` chunks the same way. Text never includes a
stop string (observe.py holds back a tail that may still become one); with
`logprobs`, the chosen sample's token logprobs all come on the last chunk.

What is streamed: a single-sample request (n=1) streams its sample as the model
produces it; a multi-sample request cannot know its answer before the policy
decides, so it sends the chosen sample's text when the decision is made. While
waiting, an SSE comment (`: keep-alive`) goes out every few seconds; clients ignore
it, and a send to a closed connection ends the stream at once. An error after the
stream has started is sent as `data: {"error": {...}}` before `[DONE]` (the openai
client raises it as an APIError).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, AsyncIterator, Callable

from starlette.requests import Request

from parareason.server.dispatch import ClientGone, Ticket
from parareason.server.responses import detail, error_body, finish_reason, usage_of

log = logging.getLogger("parareason.server")

DONE = "data: [DONE]\n\n"
KEEPALIVE = ": keep-alive\n\n"
KEEPALIVE_EVERY_S = 5.0


def sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


class ChunkFormat:
    """Builds the chunks of one stream (chat or completion)."""

    def __init__(self, kind: str, request_id: str, model: str, fingerprint: str | None = None,
                 final_logprobs: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.kind, self.id, self.model, self.fingerprint = kind, request_id, model, fingerprint
        self.final_logprobs = final_logprobs or (lambda: None)
        self.created = int(time.time())

    def _base(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": self.fingerprint, "choices": choices}

    def start(self) -> dict[str, Any] | None:
        if self.kind != "chat":
            return None
        return self._base([{"index": 0, "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None, "logprobs": None}])

    def text(self, delta: str, finish: str | None = None) -> dict[str, Any]:
        if self.kind == "chat":
            choice = {"index": 0, "delta": {"content": delta} if delta else {}, "finish_reason": finish,
                      "logprobs": None}
        else:
            choice = {"index": 0, "text": delta, "finish_reason": finish, "logprobs": None}
        return self._base([choice])

    def usage(self, usage: dict[str, int]) -> dict[str, Any]:
        return {**self._base([]), "usage": usage}


async def event_stream(ticket: Ticket, request: Request, fmt: ChunkFormat,
                       include_usage: bool) -> AsyncIterator[str]:
    """The SSE body of one streaming request. Cancels the request if it ends early."""
    try:
        first = fmt.start()
        if first is not None:
            yield sse(first)
        while True:
            try:
                event = await ticket.next_event(request, wait_s=KEEPALIVE_EVERY_S)
            except ClientGone:
                log.info("client of %s disconnected; cancelling", ticket.request_id)
                return
            if event is None:
                yield KEEPALIVE
                continue
            kind, payload = event
            if kind == "text":
                yield sse(fmt.text(payload))
            elif kind == "error":
                yield sse(error_body(f"request failed: {payload}", type_="server_error"))
                yield DONE
                return
            elif kind == "done":
                result = payload
                if result.error is not None:
                    yield sse(error_body(f"request failed: {result.error}", type_="server_error"))
                    yield DONE
                    return
                rest = ticket.observer.remaining_text()
                if rest:
                    yield sse(fmt.text(rest))
                final = fmt.text("", finish_reason(ticket.observer))
                final["choices"][0]["logprobs"] = fmt.final_logprobs()  # all of them, on the last chunk
                final["parareason"] = detail(result, ticket.observer, ticket.route)
                yield sse(final)
                if include_usage:
                    yield sse(fmt.usage(usage_of(result).model_dump()))
                yield DONE
                return
    finally:
        ticket.release("client disconnected")

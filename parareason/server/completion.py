"""One generation request, from the parsed body to the HTTP response (chat or completion).

Route it (policy, protocol, n, sampling; unsupported fields refused), admit it (429
past `max_in_flight`, 400 when the prompt does not fit the context), then either
stream it (streaming.py) or wait for its Result and build the OpenAI body: the chosen
sample's text cut before any stop string, its logprobs when asked, `usage` over all
samples, `system_fingerprint`, the `parareason` detail object, and the request id as
`x-request-id`.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from parareason.backends.base import Backend
from parareason.server.dispatch import ClientGone, Dispatcher, RequestFailed, Ticket
from parareason.server.logprobs import chat_logprobs, completion_logprobs, cut_to_text, from_sample, token_decoder
from parareason.server.observe import ObservedPolicy
from parareason.server.responses import detail, error_body, finish_reason, usage_of
from parareason.server.routing import Router, ServeDefaults, check_prompt_size
from parareason.server.schemas import (
    ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessageOut, Completion, CompletionChoice,
    CompletionRequest,
)
from parareason.server.streaming import ChunkFormat, event_stream
from parareason.server.unsupported import refuse_unsupported

log = logging.getLogger("parareason.server")


class TicketStreamingResponse(StreamingResponse):
    """A stream that always releases its ticket, even if it never starts iterating
    (client gone before the first byte), so no in-flight slot leaks."""

    def __init__(self, ticket: Ticket, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ticket = ticket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.ticket.release("client disconnected")


def error_response(status: int, message: str, *, type_: str | None = None, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    kind = type_ or {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found_error",
                     429: "rate_limit_error", 503: "service_unavailable"}.get(status, "server_error")
    body = error_body(message, type_=kind, param=param, code=code)
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def logprobs_of(observer: ObservedPolicy, backend: Backend, k: int | None, kind: str) -> dict[str, Any] | None:
    """The chosen sample's token logprobs, cut where its returned text ends."""
    if k is None or observer.chosen is None:
        return None
    decode = token_decoder(backend.tokenizer)
    lp = cut_to_text(from_sample(observer.chosen, k), decode, len(observer.chosen_text))
    return chat_logprobs(lp, decode) if kind == "chat" else completion_logprobs(lp, decode)


@dataclass
class Generation:
    """What the endpoints share: the router, the dispatcher, the backend and the fingerprint."""

    defaults: ServeDefaults
    router: Router
    dispatcher: Dispatcher
    backend: Backend
    fingerprint: str

    async def serve(self, request: Request, body: ChatCompletionRequest | CompletionRequest, kind: str,
                    prompt: str, system: str | None) -> Response:
        refuse_unsupported(body.model_extra)
        check_prompt_size(self.defaults, prompt, system)
        k = body.logprobs_k()
        route = self.router.route(model=body.model, options=body.parareason, temperature=body.temperature,
                                  top_p=body.top_p, seed=body.seed, max_new_tokens=body.max_new_tokens(),
                                  stop=body.stop_strings(), top_logprobs=k or 0)
        request_id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        ticket = await self.dispatcher.open(route, request_id, prompt, system, live=body.stream and route.n == 1,
                                            param="messages" if kind == "chat" else "prompt")
        headers = {"x-request-id": request_id}
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            fmt = ChunkFormat(kind, request_id, body.model, self.fingerprint,
                              lambda: logprobs_of(ticket.observer, self.backend, k, kind))
            return TicketStreamingResponse(ticket, event_stream(ticket, request, fmt, include_usage),
                                           media_type="text/event-stream",
                                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers})
        try:
            result = await ticket.result(request)
        except ClientGone:
            log.info("client of %s disconnected; cancelled", request_id)
            return Response(status_code=499)  # nobody reads it
        except RequestFailed as e:
            return error_response(500, f"request failed: {e}", headers=headers)
        finally:
            ticket.release("client disconnected")
        info = detail(result, ticket.observer, route)
        if result.error is not None:
            return error_response(500, f"request failed: {result.error}", headers=headers, parareason=info)
        text, reason = ticket.observer.chosen_text, finish_reason(ticket.observer)
        logprobs = logprobs_of(ticket.observer, self.backend, k, kind)
        common = dict(id=request_id, created=int(time.time()), model=body.model, usage=usage_of(result),
                      system_fingerprint=self.fingerprint, parareason=info)
        if kind == "chat":
            out: ChatCompletion | Completion = ChatCompletion(**common, choices=[ChatChoice(
                message=ChatMessageOut(content=text), finish_reason=reason, logprobs=logprobs)])
        else:
            out = Completion(**common, choices=[CompletionChoice(text=text, finish_reason=reason, logprobs=logprobs)])
        return JSONResponse(out.model_dump(), headers=headers)

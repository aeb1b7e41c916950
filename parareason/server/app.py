"""FastAPI app factory: the OpenAI-compatible endpoints of `parareason serve`.

    app = create_app(backend, ServeDefaults(model_id="qwen2.5-0.5b-coder"), max_in_flight=16)
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
GET /v1/models/{id}, GET /health. Every error is an OpenAI-style body
`{"error": {"message", "type", "param", "code"}}`: 400 for a malformed or
unsupported request, 404 for an unknown model or path, 429 when `max_in_flight`
requests are already running, 500 when the engine ended a request with an error,
503 when the engine loop is down.

The engine loop (one thread, one Scheduler) starts with the app's lifespan and stops
with it; the backend is closed on shutdown only when `close_backend` is set.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from parareason.backends.base import Backend
from parareason.server.dispatch import ClientGone, Dispatcher, RequestFailed, Ticket
from parareason.server.engine_loop import EngineLoop
from parareason.server.responses import detail, error_body, finish_reason, usage_of
from parareason.server.routing import (
    PolicyFactory, Router, RoutingError, ServeDefaults, chat_prompt, check_prompt_size,
)
from parareason.server.schemas import (
    ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessageOut, Completion, CompletionChoice,
    CompletionRequest, ModelCard, ModelList,
)
from parareason.server.streaming import ChunkFormat, event_stream

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


def _error(status: int, message: str, *, type_: str | None = None, param: str | None = None,
           code: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    kind = type_ or {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error",
                     503: "service_unavailable"}.get(status, "server_error")
    body = error_body(message, type_=kind, param=param, code=code)
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {msg}", None
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"{param}: {msg}{more}" if param else f"{msg}{more}"), param


def create_app(backend: Backend, defaults: ServeDefaults, *, max_in_flight: int = 16,
               extra_policies: dict[str, PolicyFactory] | None = None, close_backend: bool = False,
               trace_sink: Callable[[dict], None] | None = None) -> FastAPI:
    router = Router(defaults, extra_policies)
    engine = EngineLoop(backend, trace_sink=trace_sink)
    dispatcher = Dispatcher(engine, router, max_in_flight=max_in_flight)
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()
            if close_backend:
                backend.close()

    app = FastAPI(title="parareason", version="0.1.0", lifespan=lifespan)
    app.state.engine, app.state.router, app.state.dispatcher, app.state.backend = engine, router, dispatcher, backend

    # -- errors ----------------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return _error(400, message, param=param)

    @app.exception_handler(RoutingError)
    async def _routing(request: Request, exc: RoutingError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return _error(exc.status, exc.message, param=exc.param, code=exc.code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    # -- endpoints -------------------------------------------------------------------
    @app.get("/health")
    async def health() -> JSONResponse:
        body = {"status": "ok" if engine.alive else "engine down", "model": defaults.model_id,
                "backend": getattr(backend, "name", type(backend).__name__), **dispatcher.health()}
        return JSONResponse(body, status_code=200 if engine.alive else 503)

    @app.get("/v1/models")
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=m, created=started) for m in router.model_ids()])

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> ModelCard:
        router.split_model(model_id)  # 404 body when not served
        return ModelCard(id=model_id, created=started)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        prompt, system = chat_prompt(body.messages)
        return await _serve(request, body, "chat", prompt, system, body.max_new_tokens())

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        prompt = body.prompt_text()
        if not prompt.strip():
            raise RoutingError("prompt is empty", param="prompt")
        return await _serve(request, body, "completion", prompt, None, body.max_new_tokens())

    async def _serve(request: Request, body: ChatCompletionRequest | CompletionRequest, kind: str, prompt: str,
                     system: str | None, max_new_tokens: int | None) -> Response:
        check_prompt_size(defaults, prompt, system)
        route = router.route(model=body.model, options=body.parareason, temperature=body.temperature,
                             top_p=body.top_p, seed=body.seed, max_new_tokens=max_new_tokens,
                             stop=body.stop_strings())
        request_id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        ticket = await dispatcher.open(route, request_id, prompt, system, live=body.stream and route.n == 1)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            fmt = ChunkFormat(kind, request_id, body.model)
            return TicketStreamingResponse(ticket, event_stream(ticket, request, fmt, include_usage),
                                           media_type="text/event-stream",
                                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            result = await ticket.result(request)
        except ClientGone:
            log.info("client of %s disconnected; cancelled", request_id)
            return Response(status_code=499)  # nobody reads it
        except RequestFailed as e:
            return _error(500, f"request failed: {e}")
        finally:
            ticket.release("client disconnected")
        info = detail(result, ticket.observer, route)
        if result.error is not None:
            return _error(500, f"request failed: {result.error}", parareason=info)
        usage = usage_of(result)
        text = ticket.observer.chosen_text
        reason = finish_reason(ticket.observer)
        created = int(time.time())
        if kind == "chat":
            out: ChatCompletion | Completion = ChatCompletion(
                id=request_id, created=created, model=body.model, usage=usage, parareason=info,
                choices=[ChatChoice(message=ChatMessageOut(content=text), finish_reason=reason)])
        else:
            out = Completion(id=request_id, created=created, model=body.model, usage=usage, parareason=info,
                             choices=[CompletionChoice(text=text, finish_reason=reason)])
        return JSONResponse(out.model_dump())

    return app

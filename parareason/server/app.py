"""FastAPI app factory: the OpenAI-compatible endpoints of `parareason serve`.

    app = create_app(backend, ServeDefaults(model_id="qwen2.5-0.5b-coder"), max_in_flight=16)
    uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints: POST /v1/chat/completions, POST /v1/completions (with `echo`: prompt
scoring, scoring.py), GET /v1/models, GET /v1/models/{id}, GET /health, and the
tokenizer endpoints lm-eval probes (/tokenizer_info, /tokenize, /detokenize). Every
error is an OpenAI-style body `{"error": {"message", "type", "param", "code"}}`: 400
for a malformed or unsupported request (a prompt longer than the context included),
401 without the `api_key` when one is set, 404 for an unknown model or path, 429 when
`max_in_flight` requests are already running, 500 when the engine ended a request
with an error, 503 when the engine loop is down. Every response has `x-request-id`.

The engine loop (one thread, one Scheduler) starts with the app's lifespan and stops
with it; the backend is closed on shutdown only when `close_backend` is set.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from parareason.backends.base import Backend
from parareason.server import tokenizer_routes
from parareason.server.access import AccessMiddleware
from parareason.server.completion import Generation, error_response
from parareason.server.dispatch import Dispatcher
from parareason.server.engine_loop import EngineLoop
from parareason.server.responses import system_fingerprint
from parareason.server.routing import PolicyFactory, Router, RoutingError, ServeDefaults, chat_prompt
from parareason.server.schemas import ChatCompletionRequest, Completion, CompletionRequest, ModelCard, ModelList
from parareason.server.scoring import score_completion
from parareason.server.unsupported import refuse_unsupported

log = logging.getLogger("parareason.server")


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


def _completion_prompt(body: CompletionRequest, backend: Backend) -> str:
    """The one prompt of a generation request, as text (token ids are decoded: the runtime
    puts the prompt into the chat template as the user message)."""
    prompts = body.prompts()
    if len(prompts) != 1:
        raise RoutingError("exactly one prompt per generation request (send one request per prompt; they are "
                           "batched); several are accepted only for prompt scoring (echo)", param="prompt")
    [p] = prompts
    if not isinstance(p, str):
        try:
            p = backend.tokenizer.decode(p)
        except Exception as e:  # noqa: BLE001 - ids outside the vocabulary
            raise RoutingError(f"cannot decode the prompt's token ids: {e}", param="prompt") from None
    if not p.strip():
        raise RoutingError("prompt is empty", param="prompt")
    return p


def create_app(backend: Backend, defaults: ServeDefaults, *, max_in_flight: int = 16,
               extra_policies: dict[str, PolicyFactory] | None = None, close_backend: bool = False,
               trace_sink: Callable[[dict], None] | None = None, api_key: str | None = None) -> FastAPI:
    router = Router(defaults, extra_policies)
    engine = EngineLoop(backend, trace_sink=trace_sink)
    dispatcher = Dispatcher(engine, router, max_in_flight=max_in_flight)
    fingerprint = system_fingerprint(defaults, backend)
    generation = Generation(defaults, router, dispatcher, backend, fingerprint)
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
    app.state.system_fingerprint = fingerprint
    app.add_middleware(AccessMiddleware, api_key=api_key)
    tokenizer_routes.install(app, backend)

    # -- errors ----------------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, param=param)

    @app.exception_handler(RoutingError)
    async def _routing(request: Request, exc: RoutingError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

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
        return await generation.serve(request, body, "chat", prompt, system)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        if body.echo:
            return await _score(body)
        if body.max_tokens == 0:
            raise RoutingError("max_tokens=0 is only accepted with echo (prompt scoring)", param="max_tokens")
        return await generation.serve(request, body, "completion", _completion_prompt(body, backend), None)

    async def _score(body: CompletionRequest) -> Response:
        refuse_unsupported(body.model_extra)
        router.split_model(body.model)  # 404 for a model not served here
        choices, usage = await score_completion(body, backend, dispatcher)
        request_id = f"cmpl-{uuid.uuid4().hex}"
        out = Completion(id=request_id, created=int(time.time()), model=body.model, choices=choices, usage=usage,
                         system_fingerprint=fingerprint)
        return JSONResponse(out.model_dump(exclude_none=False), headers={"x-request-id": request_id})

    return app

"""The stand-in's HTTP routes: SGLang's native endpoints, over an `SGLangStandin`."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from parareason.testing.sglang_standin.admission import abort, dispatch, hung_up
from parareason.testing.sglang_standin.responses import collect, stream
from parareason.testing.sglang_standin.sampling import apply_seed_mode
from parareason.testing.sglang_standin.state import StandinState
from parareason.testing.sglang_standin.wire import (
    ContractError,
    LiveRequest,
    check_context,
    check_scheduler,
    error_response,
    parse_generate,
    sse_stream,
    value_error_response,
)

NOT_FOUND = {"detail": "Not Found"}
NO_WORKERS = {"error": "No available workers"}


def build_app(srv: StandinState) -> FastAPI:
    app = FastAPI(title="SGLang stand-in (test server)")
    tok = srv.tokenizer

    modes = srv.modes

    @app.middleware("http")
    async def record_path(request: Request, call_next: Any) -> Response:
        srv.paths.append(request.url.path)
        return await call_next(request)

    def workers_down() -> bool:
        return modes.router and not modes.healthy_workers

    @app.get("/health")
    @app.get("/health_generate")
    async def health() -> Response:
        if modes.router:
            return Response(status_code=200)  # the router's liveness, whatever its workers do
        return Response(status_code=srv.faults.health_status)

    @app.get("/readiness")
    async def readiness() -> Response:
        return Response(status_code=503 if workers_down() else 200)

    @app.get("/workers")
    async def workers() -> Response:
        if not modes.router or modes.router_legacy:
            return JSONResponse(NOT_FOUND, status_code=404)
        listed = [{"url": u, "is_healthy": modes.healthy_workers, "worker_type": "regular"}
                  for u in modes.router_workers]
        return JSONResponse({"workers": listed, "total": len(listed)})

    @app.get("/list_workers")
    async def list_workers() -> Response:
        if not modes.router:
            return JSONResponse(NOT_FOUND, status_code=404)
        return JSONResponse({"urls": list(modes.router_workers)})

    @app.get("/get_model_info")
    @app.get("/model_info")
    async def model_info() -> Response:
        if workers_down():
            return JSONResponse(NO_WORKERS, status_code=503)
        return JSONResponse({"model_path": srv.model_path, "tokenizer_path": srv.model_path, "is_generation": True,
                             "preferred_sampling_params": None, "weight_version": "default"})

    @app.get("/get_server_info")
    @app.get("/server_info")
    async def server_info() -> Response:
        if workers_down():
            return JSONResponse(NO_WORKERS, status_code=503)
        ctx = modes.context_length
        return JSONResponse({
            "model_path": srv.model_path, "incremental_streaming_output": srv.incremental,
            "stream_output": False, "version": "standin", "context_length": ctx,
            "max_req_input_len": modes.max_req_input_len,
            "allow_auto_truncate": modes.allow_auto_truncate,
            "enable_deterministic_inference": modes.deterministic_inference,
            "admin_api_key": None, "dp_size": modes.dp_size})

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": srv.model_path, "object": "model"}]}

    @app.post("/tokenize")
    @app.post("/v1/tokenize")
    async def tokenize(request: Request) -> Response:
        if not srv.tokenize_endpoints or modes.router:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        body = await request.json()
        prompt = body.get("prompt")
        # The runtime's Tokenizer.encode adds no special tokens, so both flags give the same ids.
        if isinstance(prompt, list):
            tokens: Any = [tok.encode(p) for p in prompt]
            count: Any = [len(t) for t in tokens]
        else:
            tokens = tok.encode(prompt)
            count = len(tokens)
        return JSONResponse({"tokens": tokens, "count": count, "max_model_len": -1})

    @app.post("/detokenize")
    @app.post("/v1/detokenize")
    async def detokenize(request: Request) -> Response:
        if not srv.detokenize_endpoints:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        tokens = (await request.json()).get("tokens") or []
        text = [tok.decode(t) for t in tokens] if tokens and isinstance(tokens[0], list) else tok.decode(tokens)
        return JSONResponse({"text": text})

    @app.api_route("/flush_cache", methods=["GET", "POST"])
    async def flush_cache() -> Response:
        if srv.live:
            return Response("Cache not flushed: requests are running.\n", status_code=400)
        srv.radix.clear()
        return Response("Cache flushed.\n", status_code=200)

    @app.post("/abort_request")
    async def abort_request(request: Request) -> Response:
        if modes.router:
            return JSONResponse(NOT_FOUND, status_code=404)  # the router does not forward it
        if modes.admin_api_key and request.headers.get("authorization") != f"Bearer {modes.admin_api_key}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        body = await request.json()
        srv.abort_requests.append(body)
        abort(srv, body.get("rid") or "", bool(body.get("abort_all")))
        return Response(status_code=200)

    @app.api_route("/generate", methods=["POST", "PUT"])
    async def generate(request: Request) -> Response:
        srv.loop = asyncio.get_running_loop()
        body = await request.json()
        srv.generate_requests.append(body)
        if workers_down():
            return JSONResponse(NO_WORKERS, status_code=503)
        if srv.faults.error_500_next > 0:
            srv.faults.error_500_next -= 1
            return error_response(500, "injected fault: internal server error")
        try:
            req, streaming = parse_generate(body, tok)
        except ContractError as e:  # http_server.py: the schema check, before anything runs
            return JSONResponse({"error": str(e)}, status_code=400)
        except ValueError as e:
            return value_error_response(str(e), bool(body.get("stream")))
        try:
            if req.seq_id in srv.live:
                raise ValueError(f"Duplicate request ID detected: {req.seq_id}")
            req = check_context(req, modes.context_length, modes.allow_auto_truncate)
        except ValueError as e:
            return value_error_response(str(e), streaming)
        req, rejection = check_scheduler(req, modes.max_req_len, modes.max_req_input_len, modes.allow_auto_truncate)
        req = apply_seed_mode(req, modes)
        ids = list(req.input_ids)
        cached = min(srv.radix.match(ids), max(0, len(ids) - 1))
        srv.radix.insert(ids)
        live = LiveRequest(req.seq_id, asyncio.Queue(), len(ids), cached, ids, rejection=rejection)
        if req.params.max_new_tokens == 0:  # prefill only: warms the cache
            live.finished = True
            chunk = srv.chunk(live, [], [], [], {"type": "length", "length": 0}, req, 0)
            if streaming:
                return StreamingResponse(sse_stream([chunk]), media_type="text/event-stream")
            return JSONResponse(chunk)
        srv.live[req.seq_id] = live
        task = asyncio.get_running_loop().create_task(dispatch(srv, live, req))
        srv.tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(srv.tasks.discard)
        if streaming:
            # As SGLang (entrypoints/http_server.py: background=create_abort_task(obj)): the
            # response's background task aborts the request when the stream ends for any
            # reason, a hang-up before the first byte included
            # (a stream generator that never started runs no `finally`).
            return StreamingResponse(stream(srv, live, req), media_type="text/event-stream",
                                     background=BackgroundTask(hung_up, srv, live))
        return await collect(srv, live, req)

    return app



"""The stand-in's HTTP routes: SGLang's native endpoints, over an `SGLangStandin`."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from parareason.testing.sglang_standin.responses import collect, stream
from parareason.testing.sglang_standin.state import StandinState
from parareason.testing.sglang_standin.wire import LiveRequest, error_response, parse_generate, sse_stream


def build_app(srv: StandinState) -> FastAPI:
    app = FastAPI(title="SGLang stand-in (test server)")
    tok = srv.tokenizer

    @app.get("/health")
    @app.get("/health_generate")
    async def health() -> Response:
        return Response(status_code=srv.faults.health_status)

    @app.get("/get_model_info")
    @app.get("/model_info")
    async def model_info() -> dict:
        return {"model_path": srv.model_path, "tokenizer_path": srv.model_path, "is_generation": True,
                "preferred_sampling_params": None, "weight_version": "default"}

    @app.get("/get_server_info")
    @app.get("/server_info")
    async def server_info() -> dict:
        return {"model_path": srv.model_path, "incremental_streaming_output": srv.incremental,
                "stream_output": False, "version": "standin"}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": srv.model_path, "object": "model"}]}

    @app.post("/tokenize")
    @app.post("/v1/tokenize")
    async def tokenize(request: Request) -> Response:
        if not srv.tokenize_endpoints:
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
        body = await request.json()
        srv.abort_requests.append(body)
        rid, abort_all = body.get("rid") or "", bool(body.get("abort_all"))
        if not rid and not abort_all:
            return Response(status_code=200)  # SGLang ignores an empty rid (it would match all)
        for live in list(srv.live.values()):
            if (abort_all or live.rid.startswith(rid)) and not live.finished and not live.aborted:
                live.aborted = True
                srv.aborted_rids.append(live.rid)
                srv.commands.put(("abort", live.rid))
        return Response(status_code=200)

    @app.api_route("/generate", methods=["POST", "PUT"])
    async def generate(request: Request) -> Response:
        srv.loop = asyncio.get_running_loop()
        body = await request.json()
        srv.generate_requests.append(body)
        if srv.faults.error_500_next > 0:
            srv.faults.error_500_next -= 1
            return error_response(500, "injected fault: internal server error")
        try:
            req, streaming = parse_generate(body, tok)
        except ValueError as e:
            return error_response(400, str(e))
        if req.seq_id in srv.live:
            return error_response(400, "Duplicate request ID detected.")
        ids = list(req.input_ids)
        cached = min(srv.radix.match(ids), max(0, len(ids) - 1))
        srv.radix.insert(ids)
        live = LiveRequest(req.seq_id, asyncio.Queue(), len(ids), cached, ids)
        if req.params.max_new_tokens == 0:  # prefill only: warms the cache
            live.finished = True
            chunk = srv.chunk(live, [], [], [], {"type": "length", "length": 0}, req, 0)
            if streaming:
                return StreamingResponse(sse_stream([chunk]), media_type="text/event-stream")
            return JSONResponse(chunk)
        srv.live[req.seq_id] = live
        srv.commands.put(("submit", req))
        if streaming:
            return StreamingResponse(stream(srv, live, req), media_type="text/event-stream")
        return await collect(srv, live, req)

    return app

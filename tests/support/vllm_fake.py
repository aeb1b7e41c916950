"""A fake vLLM OpenAI server for the offline tests of `VLLMBackend` (a test double).

It answers the routes the client uses in the shapes vLLM 0.32 gives them (read off
`vllm/entrypoints/openai/completion/serving.py` `completion_stream_generator`,
`vllm/entrypoints/generate/base/serving.py` and `serve/engine/protocol.py` `ErrorResponse`,
`serve/instrumentator/health.py`, `serve/tokenize/protocol.py` `TokenizeResponse`,
and tests/fixtures/vllm_stream.jsonl, captured from a real server):

* `POST /v1/completions`, streaming: one `text_completion` chunk per token with
  `choices[0].token_ids`, `logprobs` {text_offset, token_logprobs, tokens "token_id:<id>",
  top_logprobs}, `finish_reason`/`stop_reason` on the last token's chunk, `prompt_token_ids`
  on the first; then a usage chunk (`choices: []`, `prompt_tokens_details.cached_tokens`)
  and `data: [DONE]`. An error before the stream is `{"error": {message, type, param,
  code}}` with that HTTP status; a generation error inside the stream is a `data:` chunk of
  the same shape followed by `[DONE]`, as vLLM sends for finish_reason "error";
* `/health` (200, or 503 for a dead engine), `/v1/models` (with `max_model_len`),
  `/tokenize`, `/metrics` (`vllm:cache_config_info`, `vllm:num_requests_running`);
* `POST /inference/v1/abort_requests` {"request_ids": ["cmpl-<request_id>-0", ...]}: 200,
  the requests end (scale_out/token_in_token_out/api_router.py; unknown ids are ignored);
  403 with `abort_route=False`, a server started without --enable-scale-out.
* `api_key`: as `vllm serve --api-key`, paths under /v1, /v2, /inference and /cohere answer
  401 `{"error": "Unauthorized"}` without `Authorization: Bearer <key>`; /health,
  /tokenize and /metrics stay open (serve/middleware/authenticate.py, GUARDED_PREFIX).

As in vLLM, a request's tokens come from the engine (a task per request) and the stream
forwards them; a client's hang-up aborts the engine's request only when `notices_hangup`
(the real server did not always: a request then ran on to its end; with it False the
fake never does, so only the abort route stops it).

Tokens come from `ByteTestTokenizer` (bytes), one every `token_interval_s`, so every test
knows the exact answer. `faults[seq_id]` scripts one sequence's attempts, in order.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from tests.support.sglang_doubles import ByteTestTokenizer

MODEL = "fake-model"
TOK = ByteTestTokenizer()
BLOCK = 16  # the fake's KV block size (vLLM CPU uses 128)


@dataclass
class Fault:
    """What one attempt of a sequence meets: `status` answers that HTTP status with vLLM's
    error body; else `error_after` tokens then an error chunk, or `drop_after` tokens
    then a hang-up (no [DONE])."""

    status: int | None = None
    error_after: int | None = None
    drop_after: int | None = None


@dataclass
class FakeVLLM:
    max_model_len: int = 4096
    health_status: int = 200
    token_interval_s: float = 0.002
    prefix_caching: bool = True
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # seq id -> its next attempts
    notices_hangup: bool = True
    abort_route: bool = True  # False: started without --enable-scale-out (the route answers 403)
    api_key: str | None = None  # vllm serve --api-key
    engine: dict[str, asyncio.Task] = field(default_factory=dict)  # external request id -> its task
    aborted: list[str] = field(default_factory=list)  # ids the abort route was given
    requests: list[dict[str, Any]] = field(default_factory=list)  # every /v1/completions body
    running: int = 0  # streams in progress (vllm:num_requests_running)
    blocks: set[tuple[int, ...]] = field(default_factory=set)  # prompt prefixes of whole blocks seen

    def cached(self, prompt: list[int]) -> int:
        """Prefix caching as vLLM does it: whole BLOCK-token blocks an earlier prompt computed
        (never the last prompt token, whose logits must be computed)."""
        hit = next((b * BLOCK for b in range((len(prompt) - 1) // BLOCK, 0, -1)
                    if tuple(prompt[:b * BLOCK]) in self.blocks), 0)
        self.blocks.update(tuple(prompt[:b * BLOCK]) for b in range(1, len(prompt) // BLOCK + 1))
        return hit if self.prefix_caching else 0

    def seq_of(self, body: dict[str, Any]) -> str:
        """The client names requests `<seq id>-<8 hex>`."""
        return str(body.get("request_id", "")).rsplit("-", 1)[0]

    def attempts(self, seq_id: str) -> int:
        return sum(1 for b in self.requests if self.seq_of(b) == seq_id)

    def script(self, body: dict[str, Any]) -> list[int]:
        """The tokens this request 'generates': its seed and prompt length, then a sentence."""
        head = f"<{body.get('seed', 0)}:{len(body['prompt'])}> "
        return TOK.encode(head + "The answer is 42. " * 200)


def error_body(message: str, err_type: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class InjectedDrop(Exception):
    """Raised inside the stream: uvicorn then closes the connection mid-body."""


GUARDED_PREFIX = ("/v1", "/v2", "/inference", "/cohere")  # vLLM's AuthenticationMiddleware


def build_app(srv: FakeVLLM) -> FastAPI:
    app = FastAPI(title="fake vLLM (test double)")

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if srv.api_key is not None and request.method != "OPTIONS" and request.url.path.startswith(GUARDED_PREFIX) \
                and not (scheme.lower() == "bearer" and token == srv.api_key):
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        return await call_next(request)

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=srv.health_status)

    @app.get("/v1/models")
    async def models() -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": int(time.time()), "owned_by": "vllm", "root": MODEL,
             "parent": None, "max_model_len": srv.max_model_len, "permission": []}]})

    @app.post("/tokenize")
    async def tokenize(request: Request) -> Response:
        body = await request.json()
        ids = TOK.encode(body["prompt"])
        return JSONResponse({"count": len(ids), "max_model_len": srv.max_model_len, "tokens": ids,
                             "token_strs": None})

    @app.get("/metrics")
    async def metrics() -> Response:
        labels = f'block_size="{BLOCK}",enable_prefix_caching="{srv.prefix_caching}",engine="0"'
        return PlainTextResponse(f"# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{{labels}}} 1.0\n"
                                 f"# TYPE vllm:num_requests_running gauge\n"
                                 f'vllm:num_requests_running{{engine="0",model_name="{MODEL}"}} {float(srv.running)}\n')

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        srv.requests.append(body)
        planned = srv.faults.get(srv.seq_of(body)) or []
        fault = planned.pop(0) if planned else Fault()
        if fault.status is not None:
            kind = "InternalServerError" if fault.status >= 500 else "BadRequestError"
            return JSONResponse(error_body(f"injected HTTP {fault.status}", kind, fault.status),
                                status_code=fault.status)
        if len(body["prompt"]) + body["max_tokens"] > srv.max_model_len:  # vLLM refuses it up front
            return JSONResponse(error_body("This model's maximum context length is exceeded", "BadRequestError",
                                           400), status_code=400)
        return StreamingResponse(stream(srv, body, fault), media_type="text/event-stream")

    @app.post("/inference/v1/abort_requests")
    async def abort_requests(request: Request) -> Response:
        if not srv.abort_route:  # scale_out/factories.py: disabled_scale_out
            return JSONResponse(error_body("Scale-out endpoints are disabled. Restart vllm serve with "
                                           "--enable-scale-out to enable them.", "PermissionDeniedError", 403),
                                status_code=403)
        body = await request.json()
        if body.get("request_ids") is None:
            return JSONResponse({"detail": "Missing 'request_ids' in request body"}, status_code=400)
        for rid in body["request_ids"]:
            srv.aborted.append(rid)
            if rid in srv.engine:
                srv.engine[rid].cancel()
        return Response(status_code=200)

    return app


async def generate(srv: FakeVLLM, script: list[int], out: asyncio.Queue) -> None:
    """The engine's side of one request: a token every token_interval_s, until the script
    ends or the request is aborted (cancelled), then None; counted in
    vllm:num_requests_running."""
    srv.running += 1
    try:
        for tok in script:
            await asyncio.sleep(srv.token_interval_s)
            out.put_nowait(tok)
    finally:
        srv.running -= 1
        out.put_nowait(None)  # the stream's end: after an abort, its "abort" chunk


def token_chunk(rid: str, body: dict[str, Any], tok: int, i: int, offset: int) -> dict[str, Any]:
    """One token's chunk, as vLLM streams it (return_token_ids, return_tokens_as_token_ids)."""
    name = f"token_id:{tok}"
    lp = -0.01 * (i % 7 + 1)
    k = int(body.get("logprobs") or 0)
    alts = {name: lp, **{f"token_id:{(tok + j) % 256}": lp - j for j in range(1, k)}} if k else {}
    logprobs = ({"text_offset": [offset], "token_logprobs": [lp], "tokens": [name], "top_logprobs": [alts]}
                if body.get("logprobs") is not None else None)
    choice = {"index": 0, "text": TOK.decode([tok]), "logprobs": logprobs, "finish_reason": None,
              "stop_reason": None, "prompt_token_ids": body["prompt"] if i == 0 else None, "token_ids": [tok]}
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": MODEL,
            "choices": [choice]}


async def stream(srv: FakeVLLM, body: dict[str, Any], fault: Fault) -> AsyncIterator[bytes]:
    rid = f"cmpl-{body.get('request_id', 'x')}"
    script, stops = srv.script(body), list(body.get("stop") or [])
    out: list[int] = []
    offset = 0
    cached = srv.cached(body["prompt"])  # looked up at admission, as vLLM's scheduler does
    tokens: asyncio.Queue = asyncio.Queue()
    engine = asyncio.get_running_loop().create_task(generate(srv, script[:body["max_tokens"]], tokens))
    srv.engine[f"{rid}-0"] = engine
    hung_up = False
    try:
        while True:
            if fault.error_after is not None and len(out) >= fault.error_after:
                # completion_stream_generator: GenerationError -> an error chunk, then [DONE]
                yield sse(error_body("Internal server error", "InternalServerError", 500))
                yield b"data: [DONE]\n\n"
                return
            if fault.drop_after is not None and len(out) >= fault.drop_after:
                raise InjectedDrop(f"dropped after {len(out)} tokens")
            tok = await tokens.get()
            if tok is None:  # aborted through the route: vLLM's final output says "abort"
                choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": "abort", "stop_reason": None,
                          "token_ids": []}
                yield sse({"id": rid, "object": "text_completion", "model": MODEL, "choices": [choice]})
                yield b"data: [DONE]\n\n"
                return
            chunk = token_chunk(rid, body, tok, len(out), offset)
            offset += len(f"token_id:{tok}")
            out.append(tok)
            text = TOK.decode(out)
            hit = next((s for s in stops if text.endswith(s)), None)
            if hit is not None or len(out) >= body["max_tokens"]:
                chunk["choices"][0]["finish_reason"] = "stop" if hit is not None else "length"
                chunk["choices"][0]["stop_reason"] = hit
                yield sse(chunk)
                break
            yield sse(chunk)
        prompt = len(body["prompt"])
        usage = {"prompt_tokens": prompt, "total_tokens": prompt + len(out), "completion_tokens": len(out),
                 "prompt_tokens_details": {"cached_tokens": cached}}
        yield sse({"id": rid, "object": "text_completion", "created": int(time.time()), "model": MODEL,
                   "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        hung_up = True
        raise
    finally:
        if not hung_up or srv.notices_hangup:
            engine.cancel()

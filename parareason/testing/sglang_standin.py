"""SGLang stand-in: a small TEST server that speaks SGLang's native HTTP API.

SGLang itself needs CUDA, so the SGLang client is tested against this: a real
HTTP server on 127.0.0.1 (FastAPI + uvicorn in a background thread) with the
same request, response, streaming and abort protocol as `sglang.launch_server`
(see docs/sglang.md and the fact sheet it cites), backed by ANY `Backend`: a
scripted test double or the embedded transformers engine. It is not a
production server and is never picked by the runtime.

What it mimics:
* `POST /generate` with `input_ids` (or `text`), `sampling_params`, `rid`,
  `stream`, `return_logprob`, `top_logprobs_num`: a stream of
  `data: {...}\\n\\n` chunks (cumulative snapshots by default, deltas with
  `incremental_streaming_output=True`) ending with `data: [DONE]\\n\\n`, or one
  JSON object when not streaming. `max_new_tokens: 0` only warms the cache.
* `meta_info` with `id`, `finish_reason` (SGLang's objects), `prompt_tokens`,
  `completion_tokens`, `cached_tokens` (from a radix record of every token
  sequence seen, capped at prompt_tokens - 1 like SGLang), logprob triples.
* `POST /abort_request` (rid *prefix* match, `abort_all`), `GET /health`,
  `/get_model_info`, `/get_server_info`, `/tokenize`, `/detokenize`,
  `/flush_cache`, `/v1/models`.
* A client that hangs up mid-stream aborts its request.

Fault injection (`StandinFaults`, mutable while running): HTTP 500 for the next
N requests, drop the connection after K streamed tokens, stall (send nothing)
after K tokens, a /health status.

Run one by hand:  python -m parareason.testing.sglang_standin --model smollm2-135m --port 30000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from parareason.backends.base import (
    FINISH_ABORT,
    FINISH_EOS,
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP_STRING,
    FINISH_STOP_TOKEN,
    Backend,
    GenerationRequest,
    SamplingParams,
    SeqUpdate,
)


@dataclass
class StandinFaults:
    """Faults to inject; change the fields at any time from the test."""

    error_500_next: int = 0  # answer HTTP 500 to the next N /generate requests
    drop_after_tokens: int | None = None  # hang up once this many tokens were streamed
    drop_next: int | None = None  # ... for the next N requests only (None: every request)
    stall_after_tokens: int | None = None  # then send nothing more (0: not even a first chunk)
    stall_next: int | None = None  # ... for the next N requests only (None: every request)
    health_status: int = 200

    def _take(self, name: str) -> bool:
        """Consume one use of a counted fault; True if it applies to this request."""
        left = getattr(self, name)
        if left is None:
            return True
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True


class RadixRecord:
    """Token-id trie of every sequence the server has seen (what SGLang would cache)."""

    def __init__(self) -> None:
        self.root: dict[int, dict] = {}

    def match(self, ids: list[int]) -> int:
        node, n = self.root, 0
        for t in ids:
            node = node.get(t)
            if node is None:
                break
            n += 1
        return n

    def insert(self, ids: list[int]) -> None:
        node = self.root
        for t in ids:
            node = node.setdefault(t, {})

    def clear(self) -> None:
        self.root = {}


@dataclass
class _Live:
    rid: str
    updates: asyncio.Queue
    prompt_tokens: int
    cached_tokens: int
    input_ids: list[int]
    started: float = field(default_factory=time.monotonic)
    aborted: bool = False
    finished: bool = False


class _StandinDrop(Exception):
    """Raised inside a streaming body to make the server hang up mid-response."""


class SGLangStandin:
    """Start with `start()` (or `with SGLangStandin(backend) as srv:`); `srv.url` is its address."""

    def __init__(
        self,
        backend: Backend,
        host: str = "127.0.0.1",
        port: int = 0,
        model_path: str | None = None,
        incremental_streaming_output: bool = False,
        step_interval_s: float = 0.0,
        tokenize_endpoints: bool = True,
        detokenize_endpoints: bool = True,
    ) -> None:
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.host, self.port = host, port
        self.model_path = model_path or f"standin/{self.tokenizer.name}"
        self.incremental = incremental_streaming_output
        self.step_interval_s = step_interval_s  # pace decoding so tests can act mid-stream
        self.tokenize_endpoints = tokenize_endpoints  # False: answer 404, like a server without them
        self.detokenize_endpoints = detokenize_endpoints
        self.faults = StandinFaults()
        self.radix = RadixRecord()
        # Observations for tests.
        self.generate_requests: list[dict[str, Any]] = []
        self.abort_requests: list[dict[str, Any]] = []  # every /abort_request body
        self.aborted_rids: list[str] = []  # requests those aborts actually stopped
        self.disconnected_rids: list[str] = []
        self._live: dict[str, _Live] = {}
        self._commands: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._engine_thread: threading.Thread | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "SGLangStandin":
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="error",
                                lifespan="off", timeout_graceful_shutdown=1, access_log=False)
        self._server = uvicorn.Server(config)
        self._http_thread = threading.Thread(target=self._server.run, name="standin-http", daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._http_thread.is_alive():
                raise RuntimeError(f"SGLang stand-in did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._engine_thread = threading.Thread(target=self._engine_loop, name="standin-engine", daemon=True)
        self._engine_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in (self._http_thread, self._engine_thread):
            if t is not None:
                t.join(timeout=5)

    def __enter__(self) -> "SGLangStandin":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ engine thread

    def _engine_loop(self) -> None:
        """The only thread that touches the backend (backends need not be thread-safe)."""
        while not self._stopping.is_set():
            try:
                cmd = self._commands.get(timeout=0 if self.backend.has_work() else 0.05)
                self._run_command(cmd)
                while True:
                    self._run_command(self._commands.get_nowait())
            except queue.Empty:
                pass
            if self.backend.has_work():
                try:
                    updates = self.backend.step(timeout_s=0.01)
                except Exception as e:  # noqa: BLE001 - a crashed backend fails its requests, like a server
                    updates = [SeqUpdate(rid, finished=True, finish_reason=FINISH_ERROR,
                                         error=f"backend step failed: {type(e).__name__}: {e}")
                               for rid, live in list(self._live.items()) if not live.finished]
                    self._stopping.wait(0.05)
                for u in updates:
                    self._dispatch(u)
                if self.step_interval_s:
                    self._stopping.wait(self.step_interval_s)

    def _run_command(self, cmd: tuple) -> None:
        if cmd[0] == "submit":
            self.backend.submit(cmd[1])
        elif cmd[0] == "abort":
            self.backend.abort(cmd[1])

    def _dispatch(self, u: SeqUpdate) -> None:
        live = self._live.get(u.seq_id)
        if live is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(live.updates.put_nowait, u)

    # ------------------------------------------------------------------ HTTP app

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="SGLang stand-in (test server)")
        tok = self.tokenizer

        @app.get("/health")
        @app.get("/health_generate")
        async def health() -> Response:
            return Response(status_code=self.faults.health_status)

        @app.get("/get_model_info")
        @app.get("/model_info")
        async def model_info() -> dict:
            return {"model_path": self.model_path, "tokenizer_path": self.model_path, "is_generation": True,
                    "preferred_sampling_params": None, "weight_version": "default"}

        @app.get("/get_server_info")
        @app.get("/server_info")
        async def server_info() -> dict:
            return {"model_path": self.model_path, "incremental_streaming_output": self.incremental,
                    "stream_output": False, "version": "standin"}

        @app.get("/v1/models")
        async def models() -> dict:
            return {"object": "list", "data": [{"id": self.model_path, "object": "model"}]}

        @app.post("/tokenize")
        @app.post("/v1/tokenize")
        async def tokenize(request: Request) -> Response:
            if not self.tokenize_endpoints:
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
            if not self.detokenize_endpoints:
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            tokens = (await request.json()).get("tokens") or []
            text = [tok.decode(t) for t in tokens] if tokens and isinstance(tokens[0], list) else tok.decode(tokens)
            return JSONResponse({"text": text})

        @app.api_route("/flush_cache", methods=["GET", "POST"])
        async def flush_cache() -> Response:
            if self._live:
                return Response("Cache not flushed: requests are running.\n", status_code=400)
            self.radix.clear()
            return Response("Cache flushed.\n", status_code=200)

        @app.post("/abort_request")
        async def abort_request(request: Request) -> Response:
            body = await request.json()
            self.abort_requests.append(body)
            rid, abort_all = body.get("rid") or "", bool(body.get("abort_all"))
            if not rid and not abort_all:
                return Response(status_code=200)  # SGLang ignores an empty rid (it would match all)
            for live in list(self._live.values()):
                if (abort_all or live.rid.startswith(rid)) and not live.finished and not live.aborted:
                    live.aborted = True
                    self.aborted_rids.append(live.rid)
                    self._commands.put(("abort", live.rid))
            return Response(status_code=200)

        @app.api_route("/generate", methods=["POST", "PUT"])
        async def generate(request: Request) -> Response:
            self._loop = asyncio.get_running_loop()
            body = await request.json()
            self.generate_requests.append(body)
            if self.faults.error_500_next > 0:
                self.faults.error_500_next -= 1
                return _error(500, "injected fault: internal server error")
            try:
                req, stream = self._parse_generate(body)
            except ValueError as e:
                return _error(400, str(e))
            if req.seq_id in self._live:
                return _error(400, "Duplicate request ID detected.")
            ids = list(req.input_ids)
            cached = min(self.radix.match(ids), max(0, len(ids) - 1))
            self.radix.insert(ids)
            live = _Live(req.seq_id, asyncio.Queue(), len(ids), cached, ids)
            if req.params.max_new_tokens == 0:  # prefill only: warms the cache
                live.finished = True
                chunk = self._chunk(live, [], [], [], {"type": "length", "length": 0}, req, 0)
                if stream:
                    return StreamingResponse(_sse([chunk]), media_type="text/event-stream")
                return JSONResponse(chunk)
            self._live[req.seq_id] = live
            self._commands.put(("submit", req))
            if stream:
                return StreamingResponse(self._stream(live, req), media_type="text/event-stream")
            return await self._collect(live, req, request)

        return app

    def _parse_generate(self, body: dict[str, Any]) -> tuple[GenerationRequest, bool]:
        ids = body.get("input_ids")
        if ids is None and body.get("text") is not None:
            if not isinstance(body["text"], str):
                raise ValueError("the stand-in serves single requests only (no batches)")
            ids = self.tokenizer.encode(body["text"])
        if ids is None:
            raise ValueError("Either text, input_ids or input_embeds should be provided.")
        if not ids or not isinstance(ids[0], int):
            raise ValueError("the stand-in serves single, non-empty input_ids only (no batches)")
        sp = body.get("sampling_params") or {}
        if sp.get("n", 1) not in (1, None):
            raise ValueError("the stand-in does not implement n > 1")
        stop = sp.get("stop") or ()
        top_k = sp.get("top_k")
        temperature = sp.get("temperature")
        params = SamplingParams(
            temperature=1.0 if temperature is None else float(temperature),
            top_p=1.0 if sp.get("top_p") is None else float(sp["top_p"]),
            top_k=0 if top_k in (None, -1) else int(top_k),
            seed=sp.get("sampling_seed"),
            max_new_tokens=128 if sp.get("max_new_tokens") is None else int(sp["max_new_tokens"]),
            stop_strings=(stop,) if isinstance(stop, str) else tuple(stop),
            stop_token_ids=tuple(sp.get("stop_token_ids") or ()),
            ignore_eos=bool(sp.get("ignore_eos") or False),
            top_logprobs=int(body.get("top_logprobs_num") or 0) if body.get("return_logprob") else 0,
        )
        if params.max_new_tokens < 0 or params.temperature < 0 or not 0 < params.top_p <= 1:
            raise ValueError(f"invalid sampling_params: {sp}")
        rid = body.get("rid") or uuid.uuid4().hex
        return GenerationRequest(rid, tuple(int(t) for t in ids), params), bool(body.get("stream"))

    async def _next_update(self, live: _Live) -> SeqUpdate | None:
        while not self._stopping.is_set():
            try:
                return await asyncio.wait_for(live.updates.get(), timeout=0.1)
            except asyncio.TimeoutError:
                continue
        return None

    async def _stream(self, live: _Live, req: GenerationRequest) -> AsyncIterator[bytes]:
        faults = self.faults
        drop_at = faults.drop_after_tokens if faults.drop_after_tokens is not None and faults._take("drop_next") else None
        stall_at = faults.stall_after_tokens if faults.stall_after_tokens is not None and faults._take("stall_next") else None
        out: list[int] = []
        lps: list[float] = []
        tops: list[list[tuple[int, float]]] = []
        try:
            if stall_at == 0:
                await self._stall()
            while True:
                u = await self._next_update(live)
                if u is None:
                    return
                n_before = len(out)
                out += u.token_ids
                lps += u.logprobs
                tops += u.top_logprobs or [[] for _ in u.token_ids]
                finish = _finish_json(u, out, live.aborted) if u.finished else None
                if drop_at is not None and len(out) >= drop_at:
                    if drop_at > n_before:  # stream exactly drop_at tokens, then hang up
                        del out[drop_at:], lps[drop_at:], tops[drop_at:]
                        yield _data(self._chunk(live, out, lps, tops, None, req, n_before))
                    raise _StandinDrop(f"injected fault: dropped after {drop_at} tokens")
                if u.finished:
                    live.finished = True
                    self.radix.insert(live.input_ids + out)
                yield _data(self._chunk(live, out, lps, tops, finish, req, n_before))
                if stall_at is not None and len(out) >= stall_at and not u.finished:
                    await self._stall()
                    return
                if u.finished:
                    yield b"data: [DONE]\n\n"
                    return
        finally:
            self._live.pop(live.rid, None)
            if not live.finished and not live.aborted:
                # the client hung up (or a fault dropped it): SGLang aborts such requests
                self.disconnected_rids.append(live.rid)
                self._commands.put(("abort", live.rid))

    async def _stall(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(0.05)

    async def _collect(self, live: _Live, req: GenerationRequest, request: Request) -> Response:
        out: list[int] = []
        lps: list[float] = []
        tops: list[list[tuple[int, float]]] = []
        try:
            while True:
                u = await self._next_update(live)
                if u is None:
                    return _error(503, "server shutting down")
                out += u.token_ids
                lps += u.logprobs
                tops += u.top_logprobs or [[] for _ in u.token_ids]
                if u.finished:
                    live.finished = True
                    self.radix.insert(live.input_ids + out)
                    saved, self.incremental = self.incremental, False
                    try:
                        return JSONResponse(self._chunk(live, out, lps, tops, _finish_json(u, out, live.aborted), req, 0))
                    finally:
                        self.incremental = saved
        finally:
            self._live.pop(live.rid, None)
            if not live.finished:
                self._commands.put(("abort", live.rid))

    def _chunk(self, live: _Live, out: list[int], lps: list[float], tops: list, finish: dict | None,
               req: GenerationRequest, n_before: int) -> dict[str, Any]:
        """One SGLang output object: a cumulative snapshot, or the delta since n_before."""
        lo = n_before if self.incremental else 0
        meta: dict[str, Any] = {
            "id": live.rid,
            "finish_reason": finish,
            "prompt_tokens": live.prompt_tokens,
            "completion_tokens": len(out),
            "cached_tokens": live.cached_tokens,
            "weight_version": "default",
            "output_token_logprobs": [[lp, t, None] for lp, t in zip(lps[lo:], out[lo:])],
        }
        if req.params.top_logprobs > 0:
            meta["output_top_logprobs"] = [[[lp, t, None] for t, lp in pos] for pos in tops[lo:]]
        if finish is not None:
            meta["e2e_latency"] = time.monotonic() - live.started
        return {"text": self.tokenizer.decode(out[lo:]), "output_ids": out[lo:], "meta_info": meta}


def _finish_json(u: SeqUpdate, out: list[int], aborted: bool) -> dict[str, Any]:
    """A backend finish reason as SGLang's finish_reason object."""
    r = u.finish_reason
    if r == FINISH_EOS:
        return {"type": "stop", "matched": u.matched_stop if isinstance(u.matched_stop, int) else (out[-1] if out else None)}
    if r in (FINISH_STOP_TOKEN, FINISH_STOP_STRING):
        return {"type": "stop", "matched": u.matched_stop}
    if r == FINISH_LENGTH:
        return {"type": "length", "length": len(out)}
    if r == FINISH_ABORT:
        return {"type": "abort", "message": "Aborted by AbortReq." if aborted else "Aborted.",
                "status_code": None, "err_type": None}
    msg = u.error if r == FINISH_ERROR else f"unexpected finish reason {r!r}"
    return {"type": "abort", "message": msg, "status_code": 500, "err_type": "InternalServerError"}


def _data(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def _sse(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield _data(c)
    yield b"data: [DONE]\n\n"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"object": "error", "message": message, "type": "error", "code": status}, status_code=status)


def main() -> None:  # pragma: no cover - manual use
    ap = argparse.ArgumentParser(description="SGLang stand-in TEST server over the embedded engine")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=30000)
    ap.add_argument("--incremental-streaming-output", action="store_true")
    args = ap.parse_args()
    from parareason.backends.embedded import load_backend  # lazy: heavy import

    srv = SGLangStandin(load_backend(args.model), host=args.host, port=args.port,
                        incremental_streaming_output=args.incremental_streaming_output).start()
    print(f"SGLang stand-in (test server) for {args.model} on {srv.url}; Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":  # pragma: no cover
    main()

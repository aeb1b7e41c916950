"""SGLang's native wire format as the stand-in speaks it: request parsing, output
objects (`text`, `output_ids`, `meta_info`), finish_reason objects, SSE framing, errors.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi.responses import JSONResponse

from parareason.backends.base import (
    FINISH_ABORT,
    FINISH_EOS,
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP_STRING,
    FINISH_STOP_TOKEN,
    GenerationRequest,
    SamplingParams,
    SeqUpdate,
    Tokenizer,
)


@dataclass
class LiveRequest:
    """One request the stand-in is serving."""

    rid: str
    updates: asyncio.Queue
    prompt_tokens: int
    cached_tokens: int
    input_ids: list[int]
    started: float = field(default_factory=time.monotonic)
    aborted: bool = False
    finished: bool = False


def parse_generate(body: dict[str, Any], tokenizer: Tokenizer) -> tuple[GenerationRequest, bool]:
    """A /generate body -> (request, stream?); ValueError for what the server rejects."""
    ids = body.get("input_ids")
    if ids is None and body.get("text") is not None:
        if not isinstance(body["text"], str):
            raise ValueError("the stand-in serves single requests only (no batches)")
        ids = tokenizer.encode(body["text"])
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


def output_object(live: LiveRequest, out: list[int], lps: list[float], tops: list, finish: dict | None,
                  req: GenerationRequest, lo: int, tokenizer: Tokenizer) -> dict[str, Any]:
    """One SGLang output object: everything from position `lo` (0: a cumulative snapshot)."""
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
    return {"text": tokenizer.decode(out[lo:]), "output_ids": out[lo:], "meta_info": meta}


def finish_json(u: SeqUpdate, out: list[int], aborted: bool) -> dict[str, Any]:
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


def sse_data(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def sse_stream(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield sse_data(c)
    yield b"data: [DONE]\n\n"


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"object": "error", "message": message, "type": "error", "code": status}, status_code=status)

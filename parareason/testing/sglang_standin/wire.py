"""SGLang's native wire format as the stand-in speaks it: request parsing, output
objects (`text`, `output_ids`, `meta_info`), finish_reason objects, SSE framing, errors.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator

from fastapi.responses import JSONResponse, Response, StreamingResponse

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
    abort_sent: bool = False  # the tokenizer manager forwarded an abort for this rid (only once)
    dispatched: bool = False  # the scheduler holds it (queued or running)
    running: bool = False  # the backend decodes it
    cancel_on_dispatch: bool = False  # the client hung up before the scheduler had it
    rejection: str | None = None  # the scheduler's abort message (its input became one stub token)
    hung_up: bool = False  # the streaming client went away (its abort follows after a delay)


# Pushed to a request's updates when it is aborted while still queued.
QUEUED_ABORT = object()


class ContractError(ValueError):
    """A body the schema check rejects (`entrypoints/api_contract.py`): HTTP 400 {"error": "..."}."""


_INT_FIELDS = ("max_new_tokens", "top_k", "sampling_seed", "min_new_tokens")
_NUMBER_FIELDS = ("temperature", "top_p", "min_p", "repetition_penalty", "frequency_penalty", "presence_penalty")


def _check_contract(body: dict[str, Any]) -> None:
    sp = body.get("sampling_params")
    if sp is not None and not isinstance(sp, dict):
        raise ContractError("invalid type: sampling_params, expected a map")
    ids = body.get("input_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(t, (int, list)) and not isinstance(t, bool)
                                                              for t in ids)):
        raise ContractError("invalid type: input_ids, expected a sequence of integers")
    for k, v in (sp or {}).items():
        if v is None:
            continue
        if k in _INT_FIELDS and (not isinstance(v, int) or isinstance(v, bool)):
            raise ContractError(f"invalid type: {k} = {v!r}, expected i64")
        if k in _NUMBER_FIELDS and (not isinstance(v, (int, float)) or isinstance(v, bool)):
            raise ContractError(f"invalid type: {k} = {v!r}, expected f64")


def check_context(req: GenerationRequest, context_length: int | None, auto_truncate: bool) -> GenerationRequest:
    """tokenizer_manager.py `_validate_one_request`: the context-length checks, same messages."""
    if context_length is None:
        return req
    n, new = len(req.input_ids), req.params.max_new_tokens
    if n >= context_length:
        if not auto_truncate:
            raise ValueError(f"The input ({n} tokens) is longer than the model's context length "
                             f"({context_length} tokens).")
        req = replace(req, input_ids=req.input_ids[:context_length])
        n = len(req.input_ids)
    if new + n > context_length:
        if not auto_truncate:
            raise ValueError(
                f"Requested token count exceeds the model's maximum context length of {context_length} tokens. "
                f"You requested a total of {new + n} tokens: {n} tokens from the input messages and {new} "
                f"tokens for the completion. Please reduce the number of tokens in the input messages or the "
                f"completion to fit within the limit.")
        req = replace(req, params=replace(req.params, max_new_tokens=max(0, context_length - n)))
    return req


def check_scheduler(req: GenerationRequest, max_req_len: int | None, max_req_input_len: int | None,
                    auto_truncate: bool) -> tuple[GenerationRequest, str | None]:
    """The scheduler's own checks: (request as it runs, abort message or None).

    `managers/scheduler.py:2710-2717` caps max_new_tokens to max_req_len - input - 1
    first; then `managers/utils.py:272-285` refuses (or, auto-truncating, cuts) an input
    of max_req_input_len tokens or more, and `schedule_batch.py:2233-2238` replaces a
    refused input by one stub token that is still prefilled (its logprobs are off: the
    answer drops them).
    """
    if max_req_len is None or max_req_input_len is None:
        return req, None
    n = len(req.input_ids)
    p = replace(req.params, max_new_tokens=max(0, min(req.params.max_new_tokens, max_req_len - n - 1)))
    req = replace(req, params=p)
    if n < max_req_input_len:
        return req, None
    if auto_truncate:
        return replace(req, input_ids=req.input_ids[:max_req_input_len]), None
    message = (f"Input length ({n} tokens) exceeds the maximum allowed length ({max_req_input_len} tokens). "
               f"Use a shorter input or enable --allow-auto-truncate.")
    return replace(req, input_ids=(0,), params=replace(p, max_new_tokens=1)), message


def rejected_finish(message: str) -> dict[str, Any]:
    """`FINISH_ABORT(message, 400, "BadRequestError").to_json()` (`managers/schedule_batch.py:332-345`)."""
    return {"type": "abort", "message": message, "status_code": 400, "err_type": "BadRequestError"}


def parse_generate(body: dict[str, Any], tokenizer: Tokenizer) -> tuple[GenerationRequest, bool]:
    """A /generate body -> (request, stream?); ContractError / ValueError for what the server rejects."""
    _check_contract(body)
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
        # schedule_batch.py `_check_token_based_finish`: ignore_eos also disables stop_token_ids.
        stop_token_ids=() if sp.get("ignore_eos") else tuple(sp.get("stop_token_ids") or ()),
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
        # managers/scheduler.py: a running request aborted by AbortReq gets FINISH_ABORT("Aborted").
        return {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None}
    msg = u.error if r == FINISH_ERROR else f"unexpected finish reason {r!r}"
    return {"type": "abort", "message": msg, "status_code": 500, "err_type": "InternalServerError"}


def queued_abort_object(live: LiveRequest, incremental: bool) -> dict[str, Any]:
    """tokenizer_manager.py `_handle_abort_req`: no prompt/cached token counts, nothing generated."""
    meta = {"id": live.rid, "finish_reason": {"type": "abort", "message": "Abort in waiting queue"},
            "weight_version": "default", "e2e_latency": time.monotonic() - live.started,
            "output_token_logprobs": [], "completion_tokens": 0}
    return {"text": "", "output_ids": [], "meta_info": meta}


def sse_data(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def sse_stream(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield sse_data(c)
    yield b"data: [DONE]\n\n"


def value_error_response(message: str, streaming: bool) -> Response:
    """A ValueError in the tokenizer manager, as `http_server.py` answers it.

    Streaming: HTTP 200, one `{"error": {...}}` chunk, then [DONE]. Otherwise 400 {"error": {"message"}}.
    """
    if not streaming:
        return JSONResponse({"error": {"message": message}}, status_code=400)
    err = {"error": {"message": message, "type": "invalid_request_error", "code": 400, "retryable": False}}
    return StreamingResponse(_one_event(err), media_type="text/event-stream")


async def _one_event(obj: dict[str, Any]) -> AsyncIterator[bytes]:
    yield sse_data(obj)
    yield b"data: [DONE]\n\n"


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"object": "error", "message": message, "type": "error", "code": status}, status_code=status)

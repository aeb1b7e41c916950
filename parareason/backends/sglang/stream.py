"""Parsing SGLang's native streaming format.

`/generate` with `"stream": true` answers `text/event-stream`: events
`data: <json>\\n\\n`, always ending with `data: [DONE]\\n\\n`. By default every
chunk is a *snapshot* (cumulative `output_ids` and logprob lists); with the
server flag `--incremental-streaming-output` chunks are *deltas* (older builds'
`--stream-output` made only `output_ids` incremental). `ChunkDecoder` turns
either form into "what is new since the last chunk", so the client works
against any server without being told its mode.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from parareason.backends.base import (
    FINISH_ABORT,
    FINISH_EOS,
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP_STRING,
    FINISH_STOP_TOKEN,
)

DONE = "[DONE]"
# managers/schedule_batch.py: an out-of-vocabulary (NaN logits) token ends a request as
# FINISH_MATCHED_STR(matched="NaN happened"), which looks like a stop string.
NAN_MATCHED = "NaN happened"
# Marker for a logprob the server did not send (never happens when return_logprob
# is on, but a number we made up would be worse than an explicit NaN).
MISSING_LOGPROB = math.nan



@dataclass
class Delta:
    """What one stream chunk adds to a sequence."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    finish: dict[str, Any] | None = None  # SGLang's finish_reason object, when final
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    error: str | None = None  # an `{"error": {...}}` chunk


def parse_payload(payload: str) -> dict[str, Any] | None:
    """JSON of one event, or None for the terminating [DONE]."""
    if payload.strip() == DONE:
        return None
    obj = json.loads(payload)
    if not isinstance(obj, dict):
        raise ValueError(f"stream chunk is not an object: {payload[:80]!r}")
    return obj


class ChunkDecoder:
    """Turns one sequence's chunks (cumulative or delta) into new tokens.

    mode "auto" decides per chunk with `meta_info.completion_tokens` (the total so
    far in both modes): a cumulative chunk carries that many ids, a delta chunk
    carries total minus what was already delivered. The two only differ once
    something was delivered, and then they always differ.
    """

    def __init__(self, mode: str = "auto") -> None:
        if mode not in ("auto", "cumulative", "incremental"):
            raise ValueError(f"unknown stream mode {mode!r}")
        self.mode = mode
        self.ids: list[int] = []  # every output id delivered so far

    def _is_cumulative(self, out: list[int], total: int | None) -> bool:
        n = len(self.ids)
        if self.mode != "auto":
            return self.mode == "cumulative"
        if n == 0:
            return True  # both readings agree
        if total is not None:
            if len(out) == total:
                return True
            if len(out) == total - n:
                return False
        return len(out) >= n and out[:n] == self.ids

    def decode(self, chunk: dict[str, Any]) -> Delta:
        if "error" in chunk and "output_ids" not in chunk:
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            return Delta(error=str(msg))
        meta = chunk.get("meta_info") or {}
        out = [int(t) for t in (chunk.get("output_ids") or [])]
        total = meta.get("completion_tokens")
        n = len(self.ids)
        new = out[n:] if self._is_cumulative(out, total) else out
        if total is not None and len(new) > max(0, total - n):
            # e.g. an abort in the waiting queue repeats "the last id" with 0 tokens made
            new = new[: max(0, total - n)]
        k = len(new)
        delta = Delta(token_ids=new)
        triples = _align(meta.get("output_token_logprobs"), n, k)
        delta.logprobs = [
            float(t[0]) if t is not None and t[0] is not None else MISSING_LOGPROB for t in triples
        ] if triples is not None else [MISSING_LOGPROB] * k
        tops = _align(meta.get("output_top_logprobs"), n, k)
        if tops is not None:
            delta.top_logprobs = [
                [(int(t[1]), float(t[0])) for t in (pos or []) if t is not None and t[0] is not None]
                for pos in tops
            ]
        fr = meta.get("finish_reason")
        if isinstance(fr, str):
            fr = {"type": fr}
        delta.finish = fr
        if is_rejection(fr):
            # Its one token came from a stub input (schedule_batch.py:2233-2235): not ours.
            delta.token_ids, delta.logprobs, delta.top_logprobs = [], [], []
            return delta
        if meta.get("prompt_tokens") is not None:
            delta.prompt_tokens = int(meta["prompt_tokens"])
            delta.cached_tokens = int(meta.get("cached_tokens") or 0)
        self.ids.extend(new)
        return delta


def is_rejection(finish: dict[str, Any] | None) -> bool:
    """The scheduler refused the request (`Req.set_finish_with_abort`, managers/schedule_batch.py:
    2221-2238, status 400): e.g. an input of `max_req_input_len` tokens or more."""
    return isinstance(finish, dict) and finish.get("type") == "abort" and finish.get("status_code") == 400


def _align(lst: list | None, n_before: int, k_new: int) -> list | None:
    """The part of a (cumulative or delta) per-token list that covers the k new tokens."""
    if lst is None:
        return None
    total = n_before + k_new
    if len(lst) == k_new:  # delta (or first chunk)
        return list(lst)
    if len(lst) >= total:  # cumulative snapshot
        return list(lst[n_before:total])
    if len(lst) > k_new:  # longer than a delta, shorter than a snapshot: keep the tail
        return list(lst[-k_new:]) if k_new else []
    return list(lst) + [None] * (k_new - len(lst))


def map_finish(
    finish: dict[str, Any],
    stop_token_ids: tuple[int, ...],
    aborted_by_client: bool,
) -> tuple[str, str | int | None, str | None]:
    """SGLang's finish_reason object -> (our finish reason, matched stop, error)."""
    kind = finish.get("type")
    if kind == "length":
        return FINISH_LENGTH, None, None
    if kind == "stop":
        matched = finish.get("matched")
        if matched == NAN_MATCHED:
            return FINISH_ERROR, None, "the server's logits became NaN (finish_reason matched 'NaN happened')"
        if isinstance(matched, str):
            return FINISH_STOP_STRING, matched, None
        # An explicitly requested stop id wins over EOS; any other id is an EOS (the
        # server's EOS set can be larger than ours, e.g. from generation_config.json).
        if isinstance(matched, int) and matched in stop_token_ids:
            return FINISH_STOP_TOKEN, matched, None
        return FINISH_EOS, matched, None
    if kind == "abort":
        if aborted_by_client:
            return FINISH_ABORT, None, None
        msg = finish.get("message") or "aborted by the server"
        status = finish.get("status_code")
        return FINISH_ERROR, None, f"server aborted the request ({status}): {msg}"
    return FINISH_ERROR, None, f"unknown finish_reason from server: {finish!r}"

"""The native `/generate` body for one attempt of one sequence.

What the server would otherwise do differently from the embedded engine
(SGLang 0.5.23, paths under `sglang/srt/`):
* Unset sampling values come from the model's generation_config.json
  (`--sampling-defaults model`), so the neutral ones are sent explicitly.
* input + max_new_tokens beyond the context length is a refused request
  (`managers/tokenizer_manager.py` `_validate_one_request`): max_new_tokens is
  capped to what fits, so reaching the cap ends the thread with `length`; an
  input that already fills the context is a `ContextFull` error.
* `ignore_eos` also disables `stop_token_ids` (`managers/schedule_batch.py`
  `_check_token_based_finish`), while the embedded engine honours stop ids
  without EOS: with both, the stop ids are left out and checked by the client.
* `routed_dp_rank` (`managers/io_struct.py`) pins a request to one data-parallel
  rank; plain `launch_server --dp-size N` has no prefix affinity otherwise.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from parareason.backends.base import GenerationRequest
from parareason.backends.sglang.config import SGLangConfig


class ContextFull(ValueError):
    """The sequence's context already fills the server's context length."""


@dataclass(frozen=True)
class BodyPlan:
    body: dict[str, Any]
    client_stop_ids: frozenset[int]  # stop token ids the client must enforce itself


def dp_rank(key: str, dp_size: int) -> int:
    """Stable across processes (not Python's salted hash)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % dp_size


def build_body(req: GenerationRequest, rid: str, config: SGLangConfig, context_length: int | None = None,
               dp_size: int = 1) -> BodyPlan:
    p = req.params
    max_new = p.max_new_tokens
    if context_length is not None:
        room = context_length - len(req.input_ids)
        if room <= 0:
            raise ContextFull(f"context full: {len(req.input_ids)} input tokens leave no room in the server's "
                              f"context length of {context_length} tokens")
        max_new = min(max_new, room)
    sp: dict[str, Any] = {
        "max_new_tokens": max_new,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k if p.top_k > 0 else -1,
        # Explicit neutral values: unset ones come from the model's
        # generation_config.json (--sampling-defaults model), e.g. a repetition
        # penalty the embedded engine would not apply.
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "ignore_eos": p.ignore_eos,
    }
    client_stops: frozenset[int] = frozenset()
    if p.stop_strings:
        sp["stop"] = list(p.stop_strings)
    if p.stop_token_ids and p.ignore_eos:
        client_stops = frozenset(p.stop_token_ids)  # the server would ignore them
    elif p.stop_token_ids:
        sp["stop_token_ids"] = list(p.stop_token_ids)
    if p.seed is not None and config.send_seed:
        sp["sampling_seed"] = p.seed
    body: dict[str, Any] = {
        "input_ids": list(req.input_ids),
        "sampling_params": sp,
        "rid": rid,
        "stream": True,
        "return_logprob": True,
        "logprob_start_len": -1,  # output logprobs only; >= 0 would cap the prefix-cache match
        "top_logprobs_num": p.top_logprobs,
    }
    if dp_size > 1 and config.dp_rank_affinity:
        body["routed_dp_rank"] = dp_rank(req.affinity_key or req.seq_id, dp_size)
    return BodyPlan(body, client_stops)

"""The native `/generate` body for one attempt of one sequence.

What the server would otherwise do differently from the embedded engine
(SGLang 0.5.23, paths under `sglang/srt/`):
* Unset sampling values come from the model's generation_config.json
  (`--sampling-defaults model`), so the neutral ones are sent explicitly.
* The context is checked twice. The tokenizer manager refuses input >= context
  length and input + max_new_tokens > context length
  (`managers/tokenizer_manager.py:1338, 1358`). The scheduler then aborts any
  input >= `max_req_input_len` (`managers/scheduler.py:3246-3254`,
  `managers/utils.py:272-285`: "Input length ... exceeds the maximum allowed
  length"), which is `max_req_len - 5` with `max_req_len = min(context_len - 1,
  KV pool - 1)` (`managers/tp_worker.py:568-572`), and it quietly caps
  max_new_tokens to `max_req_len - input - 1` (`managers/scheduler.py:2710-2717`).
  So max_new_tokens is capped to what both allow (reaching the cap ends the
  thread with `length`), and an input of `max_req_input_len` tokens or more is a
  `ContextFull` error. (The scheduler may cap further to fit its KV pool,
  `max_new_tokens_for_memory`, which the client cannot know.)
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


def input_limit(context_length: int | None, max_req_input_len: int | None) -> int | None:
    """The scheduler's `max_req_input_len`: the server's figure (`/server_info`), else context
    length - 6 (`managers/tp_worker.py:568-572`: min(context_len - 1, KV pool - 1) - 5); the
    smaller when both are known (a context length set on the client is a limit too)."""
    derived = None if context_length is None else context_length - 6
    known = [x for x in (max_req_input_len, derived) if x is not None]
    return min(known) if known else None


def max_new_allowed(n_input: int, context_length: int | None, max_req_input_len: int | None) -> int | None:
    """The most new tokens the server lets an input of `n_input` tokens have; None: no limit known.
    Raises ContextFull for an input the scheduler would abort."""
    limit = input_limit(context_length, max_req_input_len)
    if limit is None:
        return None
    if n_input >= limit:
        raise ContextFull(f"context full: {n_input} input tokens reach the server's maximum input length "
                          f"of {limit} tokens (context length {context_length}); the scheduler refuses them")
    max_req_len = limit + 5  # managers/tp_worker.py:572
    if context_length is not None:
        max_req_len = min(max_req_len, context_length - 1)
    # managers/scheduler.py:2710-2717 caps to max_req_len - input - 1; the tokenizer
    # manager's input + max_new <= context length (tokenizer_manager.py:1358) then holds too.
    return max_req_len - n_input - 1


def build_body(req: GenerationRequest, rid: str, config: SGLangConfig, context_length: int | None = None,
               dp_size: int = 1, max_req_input_len: int | None = None) -> BodyPlan:
    p = req.params
    max_new = p.max_new_tokens
    allowed = max_new_allowed(len(req.input_ids), context_length, max_req_input_len)
    if allowed is not None:
        max_new = min(max_new, allowed)
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

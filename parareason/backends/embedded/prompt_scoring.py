"""Prompt scoring for the embedded engine: logprobs of a prompt's own tokens.

`score_prompt(engine, ids, top_logprobs)` runs ONE causal forward pass over the prompt
(chunked like a prefill) with the engine's model and returns, for every token after
the first, log p(token | everything before it), plus the top alternatives and the
distribution after the prompt. This is what lm-evaluation-harness's loglikelihood
tasks need (`/v1/completions` with `echo` + `logprobs`).

It uses a private, throw-away KV pool, so it never touches the engine's KV, prefix
cache or running sequences; it must still be called from the thread that steps the
engine (the server's engine loop), as it shares the model's weights and torch's
threads with decode. Logprobs are log-softmax of the raw logits, like the sampler's
reported logprobs (sampler.py), so a scored continuation matches what greedy decode
reported for the same tokens.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch

from parareason.backends.base import PromptScores

# `engine` below is a TransformersEngine (engine.py imports this module, so no import back).

# Positions per forward: bounds the [chunk, vocab] float32 logits (151k vocab: 77 MB).
SCORE_CHUNK = 128


def _check(engine: Any, ids: Sequence[int], top_logprobs: int) -> None:
    n, vocab = len(ids), engine.model.config.vocab_size
    if n == 0:
        raise ValueError("cannot score an empty prompt")
    if n > engine.max_positions:
        raise ValueError(f"prompt of {n} tokens is longer than the model's {engine.max_positions} positions")
    if min(ids) < 0 or max(ids) >= vocab:
        raise ValueError(f"token id out of range [0, {vocab})")
    if top_logprobs < 0:
        raise ValueError("top_logprobs must be >= 0")


@torch.inference_mode()
def position_logits(model: Any, ids: list[int]) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, logits [Q, V]) per chunk of `ids`, causal over everything before: row j
    predicts ids[start + j + 1]. A private KV pool; the engine's is never touched."""
    n = len(ids)
    pool = model.new_kv_pool(n + 1)  # slot 0 is the pool's scratch slot; position i -> slot i + 1
    for start in range(0, n, SCORE_CHUNK):
        chunk = ids[start:start + SCORE_CHUNK]
        q = len(chunk)
        qpos = torch.arange(start, start + q)
        read = torch.arange(1, start + q + 1)[None]  # every slot so far, this chunk's included
        mask = (torch.arange(start + q)[None, :] <= qpos[:, None])[None, None]  # [1, 1, Q, L] causal
        # logits_at of shape [1, Q]: the model's LM head then runs at every position -> [1, Q, V].
        yield start, model.forward(torch.tensor([chunk]), qpos[None], pool, (qpos + 1)[None], read, mask,
                                   torch.arange(q)[None])[0]


@torch.inference_mode()
def score_prompt(engine: Any, input_ids: Sequence[int], top_logprobs: int = 0) -> PromptScores:
    ids = [int(t) for t in input_ids]
    _check(engine, ids, top_logprobs)
    n = len(ids)
    k = max(top_logprobs, 1)
    logprobs: list[float] = []
    tops: list[list[tuple[int, float]]] = []
    next_top: list[tuple[int, float]] = []
    for start, logits in position_logits(engine.model, ids):
        q = logits.shape[0]
        logp = torch.log_softmax(logits.float(), dim=-1)  # [Q, V]
        # Position j predicts token j + 1; the last position of the prompt predicts what follows.
        targets = ids[start + 1:start + q + 1]
        if targets:
            got = logp[torch.arange(len(targets)), torch.tensor(targets)]
            logprobs.extend(got.tolist())
        if top_logprobs > 0 or start + q == n:
            vals, idx = logp.topk(k, dim=-1)
            rows = [list(zip(i.tolist(), v.tolist())) for i, v in zip(idx, vals)]
            if start + q == n:
                next_top = rows[-1]
                rows = rows[:-1]
            if top_logprobs > 0:
                tops.extend(row[:top_logprobs] for row in rows)
    return PromptScores(input_ids=ids, logprobs=logprobs, top_logprobs=tops if top_logprobs > 0 else None,
                        next_top=next_top)

"""The start-up probe of SGLang's logprob scaling, on crafted server answers.

A confident first token has logprob ~0 at any temperature, so only the lower-ranked
alternatives show the scaling of `layers/sampler.py` (log_softmax(logits / T)).
"""
from __future__ import annotations

import asyncio
import json
import math

import httpx

from parareason.backends.sglang.server_facts import (
    LOGPROBS_ORIGINAL,
    LOGPROBS_SCALED,
    UNKNOWN,
    probe_logprobs,
)

LOGITS = {11: 16.0, 12: 3.0, 13: 2.5, 14: 1.0, 15: 0.0}  # token 11 is near certain


def top_logprobs(temperature: float, scaled: bool, order: list[int] | None = None) -> list[list]:
    t = temperature if scaled else 1.0
    z = math.log(sum(math.exp(v / t) for v in LOGITS.values()))
    ids = order or list(LOGITS)
    return [[LOGITS[i] / t - z, i, None] for i in ids]


def probe_with(answer) -> str:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        tops = answer(body["sampling_params"]["temperature"])
        return httpx.Response(200, json={"text": "x", "meta_info": {"output_top_logprobs": [tops]}})

    async def go() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await probe_logprobs(client, "http://sglang", [1, 2, 3])

    return asyncio.run(go())


def test_top1_near_zero_at_both_temperatures_but_lower_ranks_scaled():
    t1, t05 = top_logprobs(1.0, True), top_logprobs(0.5, True)
    assert abs(t1[0][0] - t05[0][0]) < 1e-4  # the top-1 alone cannot tell
    assert probe_with(lambda t: top_logprobs(t, scaled=True)) == LOGPROBS_SCALED


def test_unscaled_alternatives_are_original_even_in_another_order():
    answers = {1.0: top_logprobs(1.0, False), 0.5: top_logprobs(1.0, False, order=[11, 13, 12, 15, 14])}
    assert probe_with(lambda t: answers[t]) == LOGPROBS_ORIGINAL


def test_small_run_to_run_noise_is_not_scaling():
    noisy = [[lp * 1.01, i, None] for lp, i, _ in top_logprobs(1.0, False)]
    answers = {1.0: top_logprobs(1.0, False), 0.5: noisy}
    assert probe_with(lambda t: answers[t]) == LOGPROBS_ORIGINAL


def test_no_shared_alternative_is_unknown():
    answers = {1.0: [[-0.1, 11, None]], 0.5: [[-0.2, 99, None]]}
    assert probe_with(lambda t: answers[t]) == UNKNOWN

"""Greedy decoding through the embedded engine equals transformers' `generate`.

Both run float32 weights from the same cached directory; transformers runs each prompt
alone (no padding), the engine runs all prompts in one batch with shared-prefix KV.
"""
from __future__ import annotations

import os

import pytest
import torch

from parareason.models import resolve_model
from parareason.backends.registry import load_backend
from tests.support.engine_util import PROMPTS, TEST_MODEL, greedy, request, run_all

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hf_greedy(model_dir, prompts_ids, max_new_tokens, eos_ids):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    out = []
    with torch.inference_mode():
        for ids in prompts_ids:
            gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_new_tokens, do_sample=False)[0, len(ids):].tolist()
            for i, t in enumerate(gen):  # generate pads after EOS; the engine stops at it
                if t in eos_ids:
                    gen = gen[:i + 1]
                    break
            out.append(gen)
    return out


def check_matches_generate(model_name: str, prompts: list[str], max_new_tokens: int) -> None:
    engine = load_backend("embedded", model_name, dtype="float32")  # exact match needs the reference's dtype
    tok = engine.tokenizer
    ids = [tok.chat_ids([{"role": "user", "content": p}]) for p in prompts]
    for i, x in enumerate(ids):
        engine.submit(request(f"s{i}", x, greedy(max_new_tokens)))
    got = run_all(engine)
    want = hf_greedy(resolve_model(model_name), ids, max_new_tokens, tok.eos_token_ids)
    for i, w in enumerate(want):
        assert got[f"s{i}"].tokens == w, f"prompt {i}: engine {got[f's{i}'].tokens} vs generate {w}"


def test_batched_greedy_matches_transformers_generate_smollm2():
    check_matches_generate(TEST_MODEL, PROMPTS[:3], max_new_tokens=16)


@pytest.mark.slow
def test_batched_greedy_matches_transformers_generate_default_qwen():
    check_matches_generate("qwen2.5-0.5b-coder", PROMPTS[:2], max_new_tokens=8)

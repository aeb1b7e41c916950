"""ParaThinker native inference on the embedded engine (parathinker_native.py), on the shipped
small model with stand-in ids for `<think1>`..`<think8>` / `<summary>`: path isolation, the
summary against a transformers forward with explicit positions and the block mask, and
KV reuse (the summary computes only its own tokens). A tiny checkpoint with non-zero
segment embeddings checks those (loaded from disk, added to K/V before RoPE) against an
independent plain-torch forward (tests/support/parathinker_reference.py)."""
from __future__ import annotations

import json
import os

import pytest
import torch

from parareason.backends.embedded import load_tokenizer
from parareason.backends.embedded.engine import EngineOptions, TransformersEngine
from parareason.backends.embedded.model import DecoderModel
from parareason.backends.embedded.parathinker_native import ParaThinkerIds, layout
from parareason.models import resolve_model
from tests.support.engine_util import TEST_MODEL, greedy, request, run_all
from tests.support.parathinker_reference import reference_logits
from tests.support.tiny_model import tiny_config, tiny_state

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PT = ParaThinkerIds(opens=tuple(range(1000, 1008)), summary=1010)  # stand-ins: ordinary vocabulary ids


@pytest.fixture(scope="module")
def native(engine):
    eng = TransformersEngine(engine.model, engine.tokenizer, EngineOptions(parathinker=PT))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def hf():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(resolve_model(TEST_MODEL)), dtype=torch.float32,
                                                attn_implementation="eager")


def contexts(tok):
    prompt = tok.encode("Question: what is 3 + 4? Think it through.")
    p1 = [PT.opens[0]] + tok.encode(" Three plus four: count on from three, four five six seven.")
    p2 = [PT.opens[1]] + tok.encode(" 3+4=7")
    tail = [PT.summary] + tok.encode(" The final answer is")
    return prompt, p1, p2, tail


def first_logits(eng, seq_id, ids):
    eng.submit(request(seq_id, ids, greedy(1)))
    eng._admit([])
    seq = eng.running[seq_id]
    logits = seq.logits.clone()
    run_all(eng)
    return logits, seq


def hf_logits(hf, ids, lay):
    mask = torch.where(lay.mask(0, len(ids)), 0.0, torch.finfo(torch.float32).min)[None, None]
    with torch.inference_mode():
        return hf(torch.tensor([ids]), position_ids=torch.tensor([lay.positions]), attention_mask=mask).logits[0, -1]


def test_layout_restarts_positions_and_blocks_attention(engine):
    prompt, p1, p2, tail = contexts(engine.tokenizer)
    lay = layout(prompt + p1 + p2 + tail, PT)
    P, n1, n2 = len(prompt), len(p1), len(p2)
    assert lay.positions[P:P + n1] == list(range(P, P + n1))
    assert lay.positions[P + n1:P + n1 + n2] == list(range(P, P + n2))  # path 2 restarts after the prompt
    assert lay.positions[P + n1 + n2:] == list(range(P + max(n1, n2), P + max(n1, n2) + len(tail)))
    assert lay.segs == [0] * P + [1] * n1 + [2] * n2 + [0] * len(tail)
    m = lay.mask(0, P + n1 + n2 + len(tail))
    q2 = P + n1  # path 2's first token sees the prompt and itself, never path 1
    assert m[q2, :P].all() and not m[q2, P:P + n1].any() and m[q2, q2]
    assert m[-1].all()  # the summary sees everything
    assert layout(prompt, PT) is None and layout(prompt + p1 + p2, PT) is None


def test_path_logits_do_not_depend_on_other_paths(native, engine):
    tok = engine.tokenizer
    prompt, p1, _, _ = contexts(tok)
    runs = []
    for other in (" Seven.", " Let me think about eleven and twelve first."):
        native.submit(request("a", prompt + p1, greedy(6)))
        native.submit(request("b", prompt + [PT.opens[1]] + tok.encode(other), greedy(6)))
        got = run_all(native)
        runs.append((got["a"].tokens, got["a"].logprobs))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == pytest.approx(runs[1][1], abs=1e-5)


def test_summary_matches_transformers_with_positions_and_block_mask(native, engine, hf):
    prompt, p1, p2, tail = contexts(engine.tokenizer)
    ids = prompt + p1 + p2 + tail
    lay = layout(ids, PT)
    native.prefix_cache.clear()
    got, _ = first_logits(native, "s-cold", ids)  # nothing cached: every region computed in its layout
    want = hf_logits(hf, ids, lay)
    assert torch.allclose(got, want, atol=2e-3), (got - want).abs().max()  # float32 on both sides
    # the flattened context (one causal sequence) is a different computation
    flat, _ = first_logits(engine, "s-flat", ids)
    assert (flat - want).abs().max() > 1e-2
    # greedy decoding continues at positions after the longest path (pos_shift)
    native.submit(request("s-dec", ids, greedy(3)))
    dec = run_all(native)["s-dec"].tokens
    for i in range(1, len(dec)):
        ctx = ids + dec[:i]
        lay_i = layout(ctx, PT)
        assert int(hf_logits(hf, ctx, lay_i).argmax()) == dec[i]


def test_summary_reuses_the_paths_kv(native, engine, hf):
    prompt, p1, p2, tail = contexts(engine.tokenizer)
    native.prefix_cache.clear()
    for k, p in enumerate((p1, p2)):  # the paths run first (their contexts prefilled and cached)
        first_logits(native, f"path{k}", prompt + p)
    ids = prompt + p1 + p2 + tail
    got, seq = first_logits(native, "s-warm", ids)
    assert seq.prefill_computed_tokens == len(tail)  # the summary's own tokens only
    assert seq.cached_tokens == len(prompt) + len(p1) + len(p2)
    assert torch.allclose(got, hf_logits(hf, ids, layout(ids, PT)), atol=2e-3)


def test_native_only_with_the_checkpoints_tokens(native, engine):
    assert not engine.supports("parathinker_native")  # smollm2 has no <think1> token
    assert not native.supports("parathinker_native")  # stand-in ids: the protocol's markers differ


# -- segment embeddings (ParaThinker's thought-specific embedding), on a tiny checkpoint ------

SEGMENTS = 32  # vllm-parathinker qwen2.py: max_segments


@pytest.fixture(scope="module")
def seg_ckpt(tmp_path_factory):
    """A tiny Qwen2 checkpoint whose layers carry non-zero `self_attn.seg_embeddings.weight`
    (row 0 too, as a trained one has: prompt and summary tokens are segment 0), saved to
    disk and loaded like a real one; the engine reads the layout off the stand-in ids."""
    from safetensors.torch import save_file

    tok = load_tokenizer(TEST_MODEL)
    cfg = tiny_config(len(tok))
    state = tiny_state(cfg, seed=3)
    g = torch.Generator().manual_seed(4)
    for i in range(cfg.num_layers):
        state[f"model.layers.{i}.self_attn.seg_embeddings.weight"] = 0.5 * torch.randn(SEGMENTS, cfg.head_dim,
                                                                                        generator=g)
    d = tmp_path_factory.mktemp("seg-ckpt")
    save_file(state, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
        "rope_theta": cfg.rope_theta, "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position_embeddings, "tie_word_embeddings": True}))
    eng = TransformersEngine(DecoderModel.from_dir(d), tok, EngineOptions(parathinker=PT))
    yield eng, state, cfg
    eng.close()


def ref_logits(seg_ckpt, ids, segs=None, state=None):
    """The reference's next-token logits after `ids`, in the ParaThinker layout of `ids`."""
    _, own_state, cfg = seg_ckpt
    lay = layout(ids, PT)
    return reference_logits(state or own_state, cfg, ids, lay.positions, lay.segs if segs is None else segs,
                            lay.mask(0, len(ids)))[-1]


def assert_decoded_like_reference(seg_ckpt, ctx, got):
    """Each greedily decoded token is the reference's argmax, with the reference's logprob."""
    for i, tok in enumerate(got.tokens):
        want = ref_logits(seg_ckpt, ctx + got.tokens[:i]).log_softmax(-1)
        assert int(want.argmax()) == tok
        assert got.logprobs[i] == pytest.approx(float(want[tok]), abs=1e-4)


def test_segment_embeddings_load_from_the_checkpoint(seg_ckpt):
    eng, state, _ = seg_ckpt
    for i, lw in enumerate(eng.model.layers):
        assert torch.equal(lw.seg, state[f"model.layers.{i}.self_attn.seg_embeddings.weight"])


def test_summary_with_segment_embeddings_matches_the_reference(seg_ckpt):
    eng, state, _ = seg_ckpt
    prompt, p1, p2, tail = contexts(eng.tokenizer)
    ids = prompt + p1 + p2 + tail
    eng.prefix_cache.clear()
    got, _ = first_logits(eng, "seg-cold", ids)  # nothing cached: every region computed in its layout
    want = ref_logits(seg_ckpt, ids)
    assert (got - want).abs().max() < 1e-4  # float32 on both sides
    # the embeddings change this summary: without them, or with every token in segment 0,
    # the reference gives other logits (so the match above says they were applied per path)
    plain = {k: v for k, v in state.items() if "seg_embeddings" not in k}
    assert (ref_logits(seg_ckpt, ids, state=plain) - want).abs().max() > 1e-2
    assert (ref_logits(seg_ckpt, ids, segs=[0] * len(ids)) - want).abs().max() > 1e-2


def test_paths_reuse_then_summary_decode_with_segment_embeddings(seg_ckpt):
    eng, _, _ = seg_ckpt
    prompt, p1, p2, tail = contexts(eng.tokenizer)
    eng.prefix_cache.clear()
    # an ordinary sequence holding the prompt runs first: the paths reuse its KV (segment 0)
    first_logits(eng, "seg-prompt", prompt)
    for k, p in ((1, p1), (2, p2)):
        eng.submit(request(f"seg-path{k}", prompt + p, greedy(4)))
    got = run_all(eng)
    for k, p in ((1, p1), (2, p2)):  # decoded tokens carry segment k at restarted positions
        assert got[f"seg-path{k}"].first.cached_tokens == len(prompt)
        assert_decoded_like_reference(seg_ckpt, prompt + p, got[f"seg-path{k}"])
    ids = prompt + p1 + p2 + tail
    logits, seq = first_logits(eng, "seg-warm", ids)  # the paths' KV, segments included, reused
    assert seq.prefill_computed_tokens == len(tail)
    assert (logits - ref_logits(seg_ckpt, ids)).abs().max() < 1e-4
    eng.submit(request("seg-sum", ids, greedy(4)))
    assert_decoded_like_reference(seg_ckpt, ids, run_all(eng)["seg-sum"])

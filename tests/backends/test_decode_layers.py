"""decode_layers.py / kernels/decode_layers.c: a decode step's decoder layers in one C call
give model.forward's Python loop's bits (residual stream, KV pool, logits, sampled tokens
and logprobs), with siblings sharing a prompt, after the KV pool has grown (a new
address), and with ParaThinker's segment embeddings; anything else is refused clearly."""
from __future__ import annotations

import pytest
import torch

from parareason.backends.base import SamplingParams
from parareason.backends.embedded import kernel_library, load_tokenizer
from parareason.backends.embedded.decode_attention import decode_reads
from parareason.backends.embedded.decode_batch import decode_batch
from parareason.backends.embedded.decode_layers import LayerArray
from parareason.backends.embedded.engine import EngineOptions, TransformersEngine
from parareason.backends.embedded.model import DecoderModel
from parareason.backends.embedded.parathinker_native import ParaThinkerIds
from parareason.backends.registry import load_backend
from tests.backends.test_attention_shared_prefix import seq
from tests.support.engine_util import PROMPTS, TEST_MODEL, request, run_all
from tests.support.tiny_model import tiny_config, tiny_state

why_not = kernel_library.available()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"C kernels unavailable: {why_not}")


def tiny_q8(seg: bool = False) -> DecoderModel:
    cfg = tiny_config(512, layers=3)
    state = tiny_state(cfg, seed=5)
    if seg:  # non-zero rows, 0 included: prompt tokens are segment 0
        g = torch.Generator().manual_seed(6)
        for i in range(cfg.num_layers):
            state[f"model.layers.{i}.self_attn.seg_embeddings.weight"] = 0.5 * torch.randn(8, cfg.head_dim, generator=g)
    return DecoderModel(cfg, state, torch.float32, weights="q8")


def decode_once(model: DecoderModel, mode: str, kv, seqs, new, seg_ids=None):
    """One decode forward of `seqs` (each adding slot new[b]) on the path `mode`."""
    model.decode_layers = mode
    for s, slot in zip(seqs, new):
        s.tokens.append(7 + slot % 50)
    d = decode_batch(seqs, new)
    return model.forward(d.input_ids, d.positions, kv, d.write_slots, d.read_slots, d.mask, d.logits_at,
                         seg_ids=seg_ids, prefixes=d.prefixes)


def sequences(prompt_slots: list[int], rows: int, own: int):
    """`rows` siblings sharing `prompt_slots`, each with `own` slots of its own after them."""
    return [seq(prompt_slots + list(range(200 + 10 * r, 200 + 10 * r + own)), len(prompt_slots))
            for r in range(rows)]


def decoded(engine, mode: str, asks) -> dict:
    """Each (id, prompt ids, params) of `asks` run to its end on decode layers `mode`:
    id -> (tokens, logprobs)."""
    engine.model.decode_layers = mode
    engine.prefix_cache.clear()
    for seq_id, ids, params in asks:
        engine.submit(request(mode + seq_id, ids, params))
    return {k.removeprefix(mode): (v.tokens, v.logprobs) for k, v in run_all(engine).items()}


@pytest.mark.parametrize("rows", [1, 3])
def test_one_c_call_gives_the_python_loops_bits_and_follows_a_grown_pool(rows):
    model = tiny_q8()
    assert model.decode_layers == "c"
    kv = model.new_kv_pool(512)
    g = torch.Generator().manual_seed(1)
    kv.k.normal_(generator=g)
    kv.v.normal_(generator=g)
    pools = {}
    for mode in ("python", "c"):
        pool = model.new_kv_pool(512)
        pool.k.copy_(kv.k), pool.v.copy_(kv.v)
        seqs = sequences(list(range(1, 40)), rows, own=3)
        first = decode_once(model, mode, pool, seqs, [300 + r for r in range(rows)])
        pool._grow(600)  # a new address: the C call must follow it
        second = decode_once(model, mode, pool, seqs, [400 + r for r in range(rows)])
        pools[mode] = (first, second, pool.k.clone(), pool.v.clone())
    assert model._layer_array is not None  # built by the C path only: it ran
    for want, got in zip(pools["python"], pools["c"]):
        assert torch.equal(want, got)


def test_two_pools_decoding_at_once_on_one_model_keep_their_own_kv():
    """Two engines may share one model and decode from two Python threads (ctypes lets go
    of the GIL): each call gets its own pool, nothing of it is kept in the shared layers."""
    import threading

    model = tiny_q8()

    def work(seed: int, out: list) -> None:
        kv = model.new_kv_pool(512)
        kv.k.normal_(generator=torch.Generator().manual_seed(seed))
        seqs = sequences(list(range(1, 30)), 2, own=2)
        for step in range(30):
            out.append(decode_once(model, "c", kv, seqs, [300 + 2 * step, 301 + 2 * step]))
        out.append(kv.k.clone())

    alone = {s: [] for s in (1, 2)}
    for s in alone:
        work(s, alone[s])
    together = {s: [] for s in (1, 2)}
    threads = [threading.Thread(target=work, args=(s, together[s])) for s in together]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in alone:
        assert len(together[s]) == len(alone[s]) and all(torch.equal(a, b) for a, b in zip(alone[s], together[s]))


def test_segment_embeddings_give_the_python_loops_bits():
    model = tiny_q8(seg=True)
    out = {}
    for mode in ("python", "c"):
        kv = model.new_kv_pool(512)
        kv.k.normal_(generator=torch.Generator().manual_seed(2))
        seqs = sequences(list(range(1, 20)), 3, own=2)
        seg_ids = torch.tensor([[1], [2], [0]])
        with_seg = decode_once(model, mode, kv, seqs, [300, 301, 302], seg_ids=seg_ids)
        without = decode_once(model, mode, kv, seqs, [310, 311, 312])  # no seg_ids: segment 0
        out[mode] = (with_seg, without, kv.k.clone(), kv.v.clone())
    for want, got in zip(out["python"], out["c"]):
        assert torch.equal(want, got)
    assert not torch.equal(out["c"][0], out["c"][1])  # the segments changed the result


def test_engine_samples_the_same_tokens_and_logprobs_in_one_c_call():
    engine = load_backend("embedded", TEST_MODEL, dtype="float32", weights="q8")
    assert engine.model.decode_layers == "c"
    tok = engine.tokenizer

    asks = [(f"{i}.{j}", tok.chat_ids([{"role": "user", "content": p}]),  # siblings: a shared prefix
             SamplingParams(temperature=0.8, top_p=0.95, seed=10 * i + j, max_new_tokens=16))
            for i, p in enumerate(PROMPTS[:2]) for j in range(3)]
    assert decoded(engine, "c", asks) == decoded(engine, "python", asks)


def test_paths_decode_alike_with_segment_embeddings_in_the_engine():
    tok = load_tokenizer(TEST_MODEL)
    cfg = tiny_config(len(tok))
    state = tiny_state(cfg, seed=3)
    for i in range(cfg.num_layers):
        state[f"model.layers.{i}.self_attn.seg_embeddings.weight"] = torch.randn(
            32, cfg.head_dim, generator=torch.Generator().manual_seed(i))
    pt = ParaThinkerIds(opens=tuple(range(1000, 1008)), summary=1010)
    engine = TransformersEngine(DecoderModel(cfg, state, torch.float32, weights="q8"), tok,
                                EngineOptions(parathinker=pt))
    prompt = tok.encode("Question: what is 3 + 4?")

    asks = [(f"p{k}", prompt + [pt.opens[k - 1]] + tok.encode(" think"),
             SamplingParams(temperature=0.9, seed=k, max_new_tokens=6)) for k in (1, 2)]
    assert decoded(engine, "c", asks) == decoded(engine, "python", asks)


def test_refuses_weights_other_than_q8_and_a_mismatched_batch():
    cfg = tiny_config(512, layers=2)
    full = DecoderModel(cfg, tiny_state(cfg), torch.float32, weights="full")
    assert full.decode_layers == "python"
    with pytest.raises(ValueError, match="take q8 weights, not full"):
        LayerArray(full.layers, cfg.hidden_size, cfg.rms_norm_eps)
    model = tiny_q8()
    layers = LayerArray(model.layers, model.config.hidden_size, model.config.rms_norm_eps)
    kv = model.new_kv_pool(512)
    seqs = sequences([1, 2, 3], 2, own=1)
    d = decode_batch(seqs, [300, 301])
    reads = decode_reads(d.read_slots, d.mask, d.prefixes, d.write_slots, d.positions, model.cos, model.sin,
                         model.config.num_heads, model.config.num_kv_heads, kv.capacity)
    with pytest.raises(ValueError, match="1 rows for reads of 2"):
        layers.run(torch.zeros(1, 1, model.config.hidden_size), reads, kv)
    with pytest.raises(ValueError, match="contiguous float32 rows"):
        layers.run(torch.zeros(2, 1, model.config.hidden_size, dtype=torch.float64), reads, kv)

"""decode_attention.py / kernels/decode_attention.c: RoPE, the KV write and attention in one C
call give torch's result (the pool's bits exactly, attention to rounding), a row's bits do not
depend on its siblings or the threads, the plain C build agrees bitwise, and the model's
decode gives the torch path's tokens."""
from __future__ import annotations

import pytest
import torch

from parareason.backends.embedded import kernel_library
from parareason.backends.embedded.decode_attention import decode_reads, rope_write_attend
from parareason.backends.embedded.decode_batch import decode_batch
from parareason.backends.embedded.model import rotate_half
from parareason.backends.registry import load_backend
from tests.backends.test_attention_shared_prefix import KV_HEADS, GROUP, D, plain, pools, seq
from tests.support.engine_util import PROMPTS, TEST_MODEL, greedy, request, run_all

why_not = kernel_library.available()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"C kernels unavailable: {why_not}")
H = KV_HEADS * GROUP
PLAIN_C = tuple(f for f in kernel_library.FLAGS if f != "-march=native")


def tables(n: int = 512):
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
    emb = torch.cat([torch.outer(torch.arange(n).float(), inv)] * 2, dim=-1)
    return emb.cos(), emb.sin()


def qkv_rows(b: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 1, (H + 2 * KV_HEADS) * D, generator=torch.Generator().manual_seed(seed))


def reads(d, pool, mask=None):
    cos, sin = tables()
    return decode_reads(d.read_slots, d.mask if mask is None else mask, d.prefixes, d.write_slots, d.positions,
                        cos, sin, H, KV_HEADS, len(pool))


def in_c(seqs, new, qkv, k_pool, v_pool, seg=None, lib=None):
    """Append new[b] to seqs[b] and run the kernel on copies of the pools."""
    d = decode_batch(seqs, new)
    k, v = k_pool.clone(), v_pool.clone()
    out = rope_write_attend(qkv, k, v, reads(d, k), seg, lib)
    return d, out, k, v


def in_torch(d, qkv, k_pool, v_pool, seqs, seg=None):
    """The torch path's RoPE and KV write (model._attention_in_torch), then plain SDPA (float64)."""
    cos, sin = tables()
    B = qkv.shape[0]
    c, s = cos[d.positions].unsqueeze(2), sin[d.positions].unsqueeze(2)
    q = qkv[..., :H * D].view(B, 1, H, D)
    k = qkv[..., H * D:(H + KV_HEADS) * D].view(B, 1, KV_HEADS, D)
    v = qkv[..., (H + KV_HEADS) * D:].view(B, 1, KV_HEADS, D)
    if seg is not None:
        k, v = k + seg[:, None, None, :], v + seg[:, None, None, :]
    q, k = q * c + rotate_half(q) * s, k * c + rotate_half(k) * s
    kp, vp = k_pool.clone(), v_pool.clone()
    kp.index_copy_(0, d.write_slots.reshape(-1), k.reshape(B, KV_HEADS, D))
    vp.index_copy_(0, d.write_slots.reshape(-1), v.reshape(B, KV_HEADS, D))
    # SDPA in float64: torch's float32 path rounds by MKL's choice of kernel, per process
    return plain(q.double(), kp.double(), vp.double(), seqs), kp, vp


def mixed_batch():
    prompt_a, prompt_b = list(range(1, 41)), [90, 70, 71, 95, 60, 61, 62]
    seqs = [seq(prompt_a + [200 + i, 210 + i], 40) for i in range(3)]
    seqs += [seq(prompt_b + [300 + i], 7) for i in range(2)]
    seqs += [seq([150, 151, 152], 0), seq(prompt_a[:20] + [250, 251], 20)]
    return seqs, list(range(320, 320 + len(seqs)))


@pytest.mark.parametrize("with_seg", [False, True])
def test_the_pool_gets_torchs_bits_and_attention_its_result(with_seg):
    k_pool, v_pool = pools(seed=4)
    seqs, new = mixed_batch()
    qkv = qkv_rows(len(seqs), seed=5)
    seg = torch.randn(len(seqs), D) if with_seg else None
    d, got, k, v = in_c(seqs, new, qkv, k_pool, v_pool, seg)
    assert len(d.prefixes) == 2  # two groups, a row in none, a row with no prefix
    want, kp, vp = in_torch(d, qkv, k_pool, v_pool, seqs, seg)
    assert torch.equal(k, kp) and torch.equal(v, vp)  # the same float ops as torch's RoPE
    assert torch.allclose(got.double(), want, atol=2e-6), (got - want).abs().max()  # C: the same bits every run


def test_a_rows_bits_are_the_same_alone_and_among_any_number_of_siblings():
    k_pool, v_pool = pools(seed=1)
    prompt = list(range(5, 60))
    qkv = qkv_rows(64, seed=2)
    crowd = [seq(prompt + [100 + i], len(prompt)) for i in range(64)]
    _, together, _, _ = in_c(crowd, list(range(200, 264)), qkv, k_pool, v_pool)
    pair = [seq(prompt + [107], len(prompt)), seq(prompt + [103], len(prompt))]
    d, two, _, _ = in_c(pair, [207, 203], torch.cat([qkv[7:8], qkv[3:4]]), k_pool, v_pool)
    assert d.prefixes and torch.equal(two[0], together[7]) and torch.equal(two[1], together[3])
    alone = seq(prompt + [103], 0)  # no prefix group: all its slots in one list, the same keys in order
    d, one, _, _ = in_c([alone], [203], qkv[3:4], k_pool, v_pool)
    assert not d.prefixes and torch.equal(one[0], together[3])


def big_batch():
    seqs, new = mixed_batch()
    seqs += [seq(list(range(1, 41)) + [400 + i], 40) for i in range(40)]  # enough work for the pool
    return seqs, new + list(range(500, 540))


def test_threads_and_the_plain_c_build_give_the_same_bits():
    k_pool, v_pool = pools(n=600, seed=6)
    qkv = qkv_rows(len(big_batch()[0]), seed=7)
    before = torch.get_num_threads()
    try:
        got = {}
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            got[threads] = in_c(*big_batch(), qkv, k_pool, v_pool)[1]
    finally:
        torch.set_num_threads(before)
    assert torch.equal(got[1], got[2]) and torch.equal(got[1], got[3])
    plain_c = in_c(*big_batch(), qkv, k_pool, v_pool, lib=kernel_library.library(PLAIN_C))[1]
    assert torch.equal(plain_c, got[1])


def test_a_masked_out_key_is_not_read_and_an_empty_mask_gives_zeros():
    k_pool, v_pool = pools(seed=8)
    s = seq(list(range(10, 30)), 0)
    d = decode_batch([s], [31])
    qkv = qkv_rows(1, seed=9)
    mask = d.mask.clone()
    mask[..., 5] = False
    k = k_pool.clone()
    k[d.read_slots[0, 5]] = float("nan")  # would poison the result if it were read
    got = rope_write_attend(qkv, k, v_pool.clone(), reads(d, k, mask))
    assert torch.isfinite(got).all()
    none = rope_write_attend(qkv, k, v_pool.clone(), reads(d, k, torch.zeros_like(mask)))
    assert torch.equal(none, torch.zeros_like(none))


def test_model_decode_in_c_gives_the_torch_paths_tokens():
    engine = load_backend("embedded", TEST_MODEL, dtype="float32")
    assert engine.model.decode_attention == "c"
    tok = engine.tokenizer

    def tokens(mode: str):
        engine.model.decode_attention = mode
        for i, p in enumerate(PROMPTS):
            for j in range(3):  # siblings: a shared prefix
                engine.submit(request(f"{mode}{i}.{j}", tok.chat_ids([{"role": "user", "content": p}]), greedy(24)))
        return {k.removeprefix(mode): v.tokens for k, v in run_all(engine).items()}

    assert tokens("c") == tokens("torch")

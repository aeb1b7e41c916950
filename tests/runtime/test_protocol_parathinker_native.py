"""ParaThinker's full native route: Python API -> trained protocol -> embedded engine.

The engine runs a tiny random-weight Qwen2 over the test tokenizer extended as
ParaThinker's `train/train_script.py` extends its checkpoint's (`<think1>`, `</think1>`, ...,
`<summary>`, `</summary>`, `<vllm_pad>` as added special tokens, embeddings resized), with
segment embeddings. Named like a released checkpoint, the model defaults the protocol to
the trained dialect; the engine then supports the native layout, the protocol says
`details["parathinker"] == "native"`, and the summary is prefilled in the layout, reusing
the paths' KV, with the logits of an independent forward (tests/support/parathinker_reference.py).
"""
from __future__ import annotations

import pytest
import torch

from parareason import api
from parareason.backends.embedded import TransformersEngine, load_tokenizer
from parareason.backends.embedded import engine as engine_module
from parareason.backends.embedded.model import DecoderModel
from tests.support.engine_util import TEST_MODEL
from tests.support.parathinker_reference import reference_logits
from tests.support.tiny_model import tiny_config, tiny_state

# train/train_script.py's list, in its order (so <think{k}> and </think{k}> ids interleave,
# as train/custom_data_collator.py assumes)
SPECIAL = [t for k in range(1, 9) for t in (f"<think{k}>", f"</think{k}>")] + ["<summary>", "</summary>", "<vllm_pad>"]
CHECKPOINT = "Leslie04/ParaThinker-1.5B"  # a released name: the dialect defaults to trained


@pytest.fixture(scope="module")
def checkpoint():
    tok = load_tokenizer(TEST_MODEL)
    before = len(tok)
    tok.hf.add_special_tokens({"additional_special_tokens": SPECIAL})
    assert len(tok) == before + len(SPECIAL)  # the embeddings are resized to the new vocabulary
    cfg = tiny_config(len(tok))
    state = tiny_state(cfg, seed=5)
    g = torch.Generator().manual_seed(6)
    for i in range(cfg.num_layers):
        state[f"model.layers.{i}.self_attn.seg_embeddings.weight"] = 0.5 * torch.randn(32, cfg.head_dim, generator=g)
    eng = TransformersEngine(DecoderModel(cfg, dict(state), torch.float32), tok)  # parathinker="auto"
    yield eng, state, cfg
    eng.close()


@pytest.fixture
def prefills(monkeypatch):
    """Every native prefill: (its context, layout, computed tokens, logits after it)."""
    seen = []

    def spy(engine, seq, lay):
        out = real(engine, seq, lay)
        seen.append((list(seq.tokens), lay, seq.prefill_computed_tokens, seq.logits.clone()))
        return out
    real = engine_module.native_prefill
    monkeypatch.setattr(engine_module, "native_prefill", spy)
    return seen


def test_the_checkpoints_tokens_turn_the_native_layout_on(checkpoint):
    eng, _, _ = checkpoint
    assert eng.supports("parathinker_native")
    assert all(len(eng.tokenizer.encode(t)) == 1 for t in SPECIAL)


def test_api_runs_parathinker_natively_end_to_end(checkpoint, prefills):
    eng, state, cfg = checkpoint
    [r] = api.Engine(CHECKPOINT, backend=eng).run(
        ["What is 3 + 4?"], protocol="parathinker", protocol_args={"n_paths": 3, "finish_ratio": 1.0},
        n=1, max_new_tokens=5, temperature=0.0)
    assert r.error is None, r.error
    assert r.details.get("parathinker") == "native" and "approximation" not in r.details
    paths, summary = r.threads[:3], r.threads[3]
    assert [t.tokens for t in paths] == [5, 5, 5] and summary.tokens > 0
    path_runs = [p for p in prefills if p[1].summary_at is None]
    [(ids, lay, computed, logits)] = [p for p in prefills if p[1].summary_at is not None]
    assert len(path_runs) == 3
    # every path restarts right after the shared prompt, with its own segment
    P = lay.prompt_len
    assert all(run[1].prompt_len == P and run[1].positions[P] == P for run in path_runs)
    assert [lay.segs[s] for s, _ in lay.spans] == [1, 2, 3]
    longest = max(e - s for s, e in lay.spans)
    assert lay.positions[lay.summary_at] == P + longest  # the summary continues after the longest path
    # KV reuse: the prompt and the paths come from the path sequences; computed are the
    # summary's own tokens and each path's last sampled token (never fed to the model)
    assert computed == len(ids) - lay.summary_at + len(lay.spans)
    want = reference_logits(state, cfg, ids, lay.positions, lay.segs, lay.mask(0, len(ids)))[-1]
    assert (logits - want).abs().max() < 1e-4  # float32 on both sides


def test_an_explicit_prompted_dialect_stays_off_the_native_layout(checkpoint, prefills):
    eng, _, _ = checkpoint
    [r] = api.Engine(CHECKPOINT, backend=eng).run(
        ["What is 3 + 4?"], protocol="parathinker", protocol_args={"dialect": "prompted", "n_paths": 2},
        n=1, max_new_tokens=4, temperature=0.0)
    assert r.error is None and "parathinker" not in r.details
    assert prefills == []  # `<think path=k>` markup: no ParaThinker token, no native layout

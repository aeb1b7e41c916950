"""A tiny random-weight Qwen2-shaped engine (fast, no model files but the test tokenizer)."""
from __future__ import annotations

import torch

from parareason.backends.embedded import TransformersEngine, load_tokenizer
from parareason.backends.embedded.engine import EngineOptions
from parareason.backends.embedded.model import DecoderModel, ModelConfig
from tests.support.engine_util import TEST_MODEL


def tiny_config(vocab: int, layers: int = 2) -> ModelConfig:
    return ModelConfig(model_type="qwen2", vocab_size=vocab, hidden_size=64, intermediate_size=128,
                       num_layers=layers, num_heads=4, num_kv_heads=2, head_dim=16, rope_theta=10000.0,
                       rms_norm_eps=1e-6, max_position_embeddings=1024, tie_word_embeddings=True,
                       attention_bias=True)


def tiny_state(c: ModelConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return 0.1 * torch.randn(*shape, generator=g)

    nq, nkv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    state = {"model.embed_tokens.weight": rnd(c.vocab_size, c.hidden_size),
             "model.norm.weight": torch.ones(c.hidden_size)}
    for i in range(c.num_layers):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.self_attn."
        state.update({
            p + "input_layernorm.weight": torch.ones(c.hidden_size),
            p + "post_attention_layernorm.weight": torch.ones(c.hidden_size),
            a + "q_proj.weight": rnd(nq, c.hidden_size), a + "q_proj.bias": rnd(nq),
            a + "k_proj.weight": rnd(nkv, c.hidden_size), a + "k_proj.bias": rnd(nkv),
            a + "v_proj.weight": rnd(nkv, c.hidden_size), a + "v_proj.bias": rnd(nkv),
            a + "o_proj.weight": rnd(c.hidden_size, nq),
            p + "mlp.gate_proj.weight": rnd(c.intermediate_size, c.hidden_size),
            p + "mlp.up_proj.weight": rnd(c.intermediate_size, c.hidden_size),
            p + "mlp.down_proj.weight": rnd(c.hidden_size, c.intermediate_size),
        })
    return state


def tiny_engine(**options: object) -> TransformersEngine:
    """Random weights over the test model's tokenizer (its ids, chat template and EOS)."""
    tok = load_tokenizer(TEST_MODEL)
    cfg = tiny_config(len(tok))
    return TransformersEngine(DecoderModel(cfg, tiny_state(cfg), torch.float32), tok, EngineOptions(**options))

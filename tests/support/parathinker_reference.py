"""An independent ParaThinker forward in plain torch, for checking the embedded engine.

Written from the reference, not from parareason/backends/embedded/model.py: a Qwen2 layer
as github.com/LeslieKid/vllm-parathinker `vllm/model_executor/models/qwen2.py` computes it
(`Qwen2Attention.forward`: the segment embedding of each token, `seg_embeddings(seg_ids)`,
is added to k and v, broadcast over the kv heads, before the rotary embedding), over a
whole context at once with explicit position ids, segment ids and an attention mask (the
layout of `train/custom_data_collator.py`). Tied LM head, float32, no KV cache.
"""
from __future__ import annotations

import torch


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """x [T, heads, D] rotated by its token's position (rotate-half convention)."""
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = positions.float()[:, None] * inv_freq[None, :]  # [T, D/2]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def reference_logits(state: dict[str, torch.Tensor], cfg, ids: list[int], positions: list[int],
                     segs: list[int], mask: torch.Tensor) -> torch.Tensor:
    """Logits [T, vocab] of every token of `ids`; mask [T, T] bool, True = may attend.
    A layer without `self_attn.seg_embeddings.weight` adds nothing (a plain Qwen2)."""
    H, KV, D, eps = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.rms_norm_eps
    pos, seg = torch.tensor(positions), torch.tensor(segs)
    embed = state["model.embed_tokens.weight"].float()
    h = embed[torch.tensor(ids)]
    T = h.shape[0]
    for i in range(cfg.num_layers):
        p, a = f"model.layers.{i}.", f"model.layers.{i}.self_attn."
        x = _rms(h, state[p + "input_layernorm.weight"], eps)
        q = (x @ state[a + "q_proj.weight"].T + state[a + "q_proj.bias"]).view(T, H, D)
        k = (x @ state[a + "k_proj.weight"].T + state[a + "k_proj.bias"]).view(T, KV, D)
        v = (x @ state[a + "v_proj.weight"].T + state[a + "v_proj.bias"]).view(T, KV, D)
        if a + "seg_embeddings.weight" in state:  # qwen2.py: k, v += seg_emb.unsqueeze(1), before RoPE
            s = state[a + "seg_embeddings.weight"][seg][:, None, :]
            k, v = k + s, v + s
        q, k = _rope(q, pos, cfg.rope_theta), _rope(k, pos, cfg.rope_theta)
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)  # GQA
        scores = torch.einsum("thd,shd->hts", q, k) / D ** 0.5
        scores = scores.masked_fill(~mask[None], float("-inf"))
        attn = torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(T, H * D)
        h = h + attn @ state[a + "o_proj.weight"].T
        x = _rms(h, state[p + "post_attention_layernorm.weight"], eps)
        gate, up = x @ state[p + "mlp.gate_proj.weight"].T, x @ state[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(gate) * up) @ state[p + "mlp.down_proj.weight"].T
    return _rms(h, state["model.norm.weight"], eps) @ embed.T

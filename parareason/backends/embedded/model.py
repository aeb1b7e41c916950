"""A small decoder-only forward (Llama / Qwen2) over Hugging Face weights.

Written by hand instead of calling the transformers model so that the KV layout is
ours: keys/values live in a token-slot pool (`kv_pool.KVPool`), every sequence is a
list of slot ids, and sequences that share a prefix share those slots. One call runs
any batch of sequences, each adding `Q` new tokens on top of its cached ones (prefill:
one sequence, Q = chunk; decode: many sequences, Q = 1).

Covers what Llama (SmolLM2) and Qwen2 need: RMSNorm, default RoPE (rotate-half, as
in transformers), grouped-query attention (torch SDPA; float32 decode in C,
decode_attention.py), optional qkv bias (Qwen2),
SwiGLU MLP, tied or separate LM head. q/k/v and gate/up are fused into one matmul
each: fewer, larger GEMMs run faster on CPU.
"""
from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from parareason.backends.embedded import decode_attention, kernel_library
from parareason.backends.embedded.decode_layers import LayerArray
from parareason.backends.embedded.attention import attend
from parareason.backends.embedded.decode_batch import PrefixGroup
from parareason.backends.embedded.kv_pool import KVPool
from parareason.backends.embedded.profiling import ATTENTION, C_LAYERS, LINEAR, LM_HEAD, region
from parareason.backends.embedded.weights import Linear, check_weight_format, layer_format

SUPPORTED_MODEL_TYPES = ("llama", "qwen2")


@dataclass(frozen=True)
class ModelConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool

    @classmethod
    def from_hf_dir(cls, model_dir: Path) -> "ModelConfig":
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
        model_type = cfg.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"model_type {model_type!r} not supported by the embedded engine "
                             f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
        # transformers 5 writes rope_parameters; older configs rope_theta + rope_scaling
        rope = cfg.get("rope_parameters") or {}
        scaling = cfg.get("rope_scaling") or {}
        rope_type = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
        if rope_type != "default":
            raise ValueError(f"rope type {rope_type!r} not supported by the embedded engine")
        heads = cfg["num_attention_heads"]
        return cls(
            model_type=model_type,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=cfg.get("num_key_value_heads") or heads,
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
            rope_theta=float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            max_position_embeddings=cfg.get("max_position_embeddings", 4096),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            # Qwen2 always has q/k/v biases; Llama only when attention_bias is set
            attention_bias=model_type == "qwen2" or bool(cfg.get("attention_bias", False)),
        )


@dataclass
class LayerWeights:
    input_norm: torch.Tensor
    qkv: Linear
    o: Linear
    post_norm: torch.Tensor
    gate_up: Linear
    down: Linear
    seg: torch.Tensor | None = None  # ParaThinker's per-path segment embeddings [segments, head_dim]


def _load_state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir} has no *.safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class DecoderModel:
    """Weights + forward. Not an nn.Module: inference only, no autograd, no hooks."""

    def __init__(self, config: ModelConfig, state: dict[str, torch.Tensor], dtype: torch.dtype,
                 weights: str = "full"):
        check_weight_format(weights, dtype)
        self.config = config
        self.dtype = dtype
        self.weights = weights  # linear layers' format (weights.py)
        c = config

        def w(name: str) -> torch.Tensor:
            return state.pop(name).to(dtype).contiguous()  # pop: a packed format frees the dense copy

        def linear(kind: str, *names: str, bias: torch.Tensor | None = None) -> Linear:
            dense = torch.cat([w(n) for n in names]) if len(names) > 1 else w(names[0])
            return Linear(dense, bias, layer_format(weights, kind))

        self.embed = w("model.embed_tokens.weight")
        tied = c.tie_word_embeddings or "lm_head.weight" not in state
        self.lm_head = Linear(self.embed, None, layer_format(weights, "lm_head")) if tied \
            else linear("lm_head", "lm_head.weight")
        self.final_norm = w("model.norm.weight")
        self.layers: list[LayerWeights] = []
        for i in range(c.num_layers):
            p = f"model.layers.{i}."
            a = p + "self_attn."
            bias = None
            if c.attention_bias:
                bias = torch.cat([w(a + "q_proj.bias"), w(a + "k_proj.bias"), w(a + "v_proj.bias")])
            self.layers.append(LayerWeights(
                input_norm=w(p + "input_layernorm.weight"),
                qkv=linear("qkv", a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight", bias=bias),
                o=linear("o", a + "o_proj.weight"),
                post_norm=w(p + "post_attention_layernorm.weight"),
                gate_up=linear("gate_up", p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"),
                down=linear("down", p + "mlp.down_proj.weight"),
                seg=w(a + "seg_embeddings.weight") if a + "seg_embeddings.weight" in state else None,
            ))
        order = [lin for lw in self.layers for lin in (lw.qkv, lw.o, lw.gate_up, lw.down)] + [self.lm_head]
        for current, following in zip(order, order[1:] + order[:1]):  # the LM head, then layer 0 again
            current.read_ahead(following)
        # RoPE tables for every position, computed in float32 like transformers does.
        inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.int64).float() / c.head_dim))
        freqs = torch.outer(torch.arange(c.max_position_embeddings, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = emb.cos().to(dtype)
        self.sin = emb.sin().to(dtype)
        # decode (one new token per row): "c" runs RoPE, the KV write and attention in one C
        # call a layer (decode_attention.py, float32); "torch" the ops below and attention.py
        self.decode_attention = "c" if decode_attention.usable(dtype, c.head_dim) else "torch"
        # decode with q8 weights and attention in C: "c" runs the decoder layers in one C call
        # a step (decode_layers.py, the same bits); "python" the loop in forward
        self.decode_layers = "c" if self.layers_fit_c() else "python"
        self._layer_array: LayerArray | None = None  # built on the first C decode

    def layers_fit_c(self) -> bool:
        """Whether decode can run the decoder layers in one C call: q8 weights, attention in C."""
        return self.weights == "q8" and self.decode_attention == "c"

    @property
    def layers_run_in_c(self) -> bool:
        """Whether a decode forward (one new token per row) runs its layers in one C call now."""
        return self.decode_attention == "c" and self.decode_layers == "c"

    @classmethod
    def from_dir(cls, model_dir: Path, dtype: torch.dtype = torch.float32,
                 config: ModelConfig | None = None, weights: str = "full") -> "DecoderModel":
        return cls(config or ModelConfig.from_hf_dir(model_dir), _load_state_dict(model_dir), dtype, weights)

    def streamed_weight_bytes(self) -> int:
        """Bytes of weights one decode step reads (linear layers, LM head, norms; the
        embedding reads one row per token, left out)."""
        norms = sum(t.numel() * t.element_size() for lw in self.layers for t in (lw.input_norm, lw.post_norm))
        linears = sum(l.nbytes() for lw in self.layers for l in (lw.qkv, lw.o, lw.gate_up, lw.down))
        return linears + self.lm_head.nbytes() + norms

    def decode_threads(self, threads: int) -> AbstractContextManager[object]:
        """Where decode steps run: q8's kernel on `threads`, torch's small ops on one
        (kernel_library.kernel_owns_the_cores); torch's threads for everything otherwise."""
        return kernel_library.kernel_owns_the_cores(threads) if self.weights == "q8" else nullcontext()

    def new_kv_pool(self, capacity: int) -> KVPool:
        c = self.config
        return KVPool(c.num_layers, c.num_kv_heads, c.head_dim, self.dtype, capacity)

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, kv: KVPool,
                write_slots: torch.Tensor, read_slots: torch.Tensor, attn_mask: torch.Tensor,
                logits_at: torch.Tensor, seg_ids: torch.Tensor | None = None,
                read_start: int | None = None, prefixes: Sequence[PrefixGroup] = ()) -> torch.Tensor:
        """Run B sequences, each adding Q new tokens, and return logits [B, vocab] (float32).

        input_ids, positions, write_slots: [B, Q] (padding rows write to the pool's scratch
        slot and are never read). read_slots: [B, L] every slot each row attends to, the
        new ones included (they are written before they are read). attn_mask: [B, 1, Q, L]
        bool, True = may attend. logits_at: [B] which of the Q positions gives logits.
        seg_ids: [B, Q] ParaThinker segment of each new token (None: all 0); used only
        when the checkpoint has segment embeddings. prefixes (decode, Q = 1): KV prefixes
        shared by groups of rows, read once per group (attention.py); read_slots and
        attn_mask then cover each row's slots after its prefix.
        """
        c = self.config
        B, Q = input_ids.shape
        if read_start is not None and B != 1:
            raise ValueError("read_start is for a batch of one sequence")
        h = F.embedding(input_ids, self.embed)  # [B, Q, hidden]
        in_c = Q == 1 and self.decode_attention == "c"
        if in_c:
            reads = decode_attention.decode_reads(read_slots, attn_mask, prefixes, write_slots, positions, self.cos,
                                                  self.sin, c.num_heads, c.num_kv_heads, kv.capacity)
        else:
            cos = self.cos[positions].unsqueeze(2)  # [B, Q, 1, D]
            sin = self.sin[positions].unsqueeze(2)
            own_bias = None
            if Q == 1:  # decode's attention (attention.py) takes an additive mask: built once for every layer
                own_bias = torch.zeros(attn_mask.shape, dtype=self.dtype).masked_fill_(~attn_mask, float("-inf"))
        eps = c.rms_norm_eps
        if Q == 1 and self.layers_run_in_c:
            if self._layer_array is None:
                self._layer_array = LayerArray(self.layers, c.hidden_size, eps)
            with region(C_LAYERS):
                h = self._layer_array.run(h, reads, kv, self._segment_rows(seg_ids, B))
        else:
            for i, lw in enumerate(self.layers):
                with region(LINEAR):  # each linear layer runs its input's RMSNorm / SwiGLU (activations.py)
                    qkv = lw.qkv(h, "rms_norm", lw.input_norm, eps)
                with region(ATTENTION):
                    if in_c:
                        attn = decode_attention.rope_write_attend(qkv, kv.k[i], kv.v[i], reads,
                                                                  self._segment_rows(seg_ids, B, lw))
                    else:
                        attn = self._attention_in_torch(qkv, lw, i, cos, sin, kv, write_slots, read_slots, attn_mask,
                                                        seg_ids, read_start, prefixes, own_bias)
                with region(LINEAR):
                    o = lw.o(attn)
                h = h + o
                with region(LINEAR):
                    gate_up = lw.gate_up(h, "rms_norm", lw.post_norm, eps)
                    down = lw.down(gate_up, "swiglu")
                h = h + down
        last = h[torch.arange(B), logits_at]  # [B, hidden]: the LM head only where we sample
        with region(LM_HEAD):
            return self.lm_head(last, "rms_norm", self.final_norm, eps).float()

    def _segment_rows(self, seg_ids: torch.Tensor | None, rows: int, lw: LayerWeights | None = None):
        """Decode in C: ParaThinker's segment embeddings of the rows, [rows, head_dim] float32,
        for layer `lw` (None: a list for every layer), or None for a model without them.
        Segment 0 without seg_ids, as in _attention_in_torch."""
        if lw is None:
            if self.layers[0].seg is None:
                return None
            return [self._segment_rows(seg_ids, rows, layer) for layer in self.layers]
        if lw.seg is None:
            return None
        seg = lw.seg[0] if seg_ids is None else F.embedding(seg_ids.reshape(rows), lw.seg)
        return seg.expand(rows, self.config.head_dim).float().contiguous()

    def _attention_in_torch(self, qkv: torch.Tensor, lw: LayerWeights, i: int, cos: torch.Tensor,
                            sin: torch.Tensor, kv: KVPool, write_slots: torch.Tensor, read_slots: torch.Tensor,
                            attn_mask: torch.Tensor, seg_ids: torch.Tensor | None, read_start: int | None,
                            prefixes: Sequence[PrefixGroup], own_bias: torch.Tensor | None) -> torch.Tensor:
        """Layer i's RoPE, KV write and attention (attention.py) as torch ops."""
        c = self.config
        B, Q = qkv.shape[:2]
        nq, nkv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        v = qkv[..., nq + nkv:].view(B, Q, c.num_kv_heads, c.head_dim)
        if lw.seg is None:  # RoPE on q and k heads together: half the elementwise calls
            qk = qkv[..., :nq + nkv].view(B, Q, c.num_heads + c.num_kv_heads, c.head_dim)
            qk = qk * cos + rotate_half(qk) * sin
            q, k = qk[:, :, :c.num_heads], qk[:, :, c.num_heads:]
        else:  # vllm-parathinker qwen2.py: k, v += seg_embeddings(seg_ids), before RoPE
            q = qkv[..., :nq].view(B, Q, c.num_heads, c.head_dim)
            k = qkv[..., nq:nq + nkv].view(B, Q, c.num_kv_heads, c.head_dim)
            # no seg_ids: not a path, segment 0 (the collator's zeros), so an ordinary
            # prefill leaves the same KV as the native layout's prompt region reuses
            seg = lw.seg[0] if seg_ids is None else F.embedding(seg_ids, lw.seg)[:, :, None, :]
            k, v = k + seg, v + seg
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        write_flat = write_slots.reshape(-1)
        kv.k[i].index_copy_(0, write_flat, k.reshape(B * Q, c.num_kv_heads, c.head_dim))
        kv.v[i].index_copy_(0, write_flat, v.reshape(B * Q, c.num_kv_heads, c.head_dim))
        return attend(q, kv.k[i], kv.v[i], read_slots, attn_mask, read_start, prefixes, own_bias)

"""Embedded CPU engine, the default backend. Build it with
`parareason.backends.registry.load_backend("embedded", model, **opts)`; `build_engine`
here is the registry's factory, not a second public entry point.

dtype: "auto" by default: the engine times a float32 and a bfloat16 GEMM of the
model's shape on this CPU and takes bfloat16 only where it is clearly faster (CPUs
with AMX / AVX512-BF16: 4x per GEMM, 2x per decode step measured), else float32
(CPUs without fast bf16 GEMMs, where bf16 ran 3x slower). See dtype_choice.py.
Pass dtype="float32" / "bfloat16" (or set PARAREASON_DTYPE) to choose yourself.
The choice is in `engine.dtype_choice`.

weights: the linear layers' format, "full" (in the compute dtype: exact), "float16" or
"int8" (fbgemm kernels that read 2x / 4x fewer bytes; float32 activations, so dtype auto
resolves to float32 with them). See weights.py; PARAREASON_WEIGHTS sets it too.

Threads: `PARAREASON_THREADS` (or the `num_threads` option) sets torch's intra-op
threads; otherwise torch's default (physical cores, or OMP_NUM_THREADS) is kept.
OpenMP threads are told to sleep rather than spin between parallel regions
(OMP_WAIT_POLICY=PASSIVE, unless set): on a machine shared with other processes a
spinning 2-thread GEMM waits for its descheduled sibling, and a batch-16 matmul
measured 3x slower (77 ms vs 25 ms) under load. Only effective when this package is
imported before torch (the CLI does so); the env var always wins. The q8 kernel runs on
its own threads, which spin between calls yet give way under load
(kernels/spin_pool.h: a batch-1 q8 step 24 ms against 35 with libgomp's sleeping
threads, 42.5 vs 42.0 beside a busy process; Intel Xeon, 2 cores).
"""
from __future__ import annotations

import os

from parareason.thread_env import apply_defaults

apply_defaults()  # OMP_WAIT_POLICY=PASSIVE unless set; outside tools get the user's env (thread_env.py)

from dataclasses import fields  # noqa: E402

from parareason.backends.base import BackendError  # noqa: E402
from parareason.backends.embedded.engine import EngineOptions, EngineStats, TransformersEngine  # noqa: E402,E501
from parareason.backends.embedded.tokenizer import HFTokenizer  # noqa: E402

__all__ = ["EngineOptions", "EngineStats", "HFTokenizer", "TransformersEngine", "load_tokenizer"]

def _set_threads(num_threads: int | None) -> None:
    import torch

    n = num_threads or int(os.environ.get("PARAREASON_THREADS", "0") or 0)
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def load_tokenizer(model: str | None = None) -> HFTokenizer:
    """The tokenizer of a registry model (alias, HF dir or .gguf), without its weights."""
    from parareason.models import SHIPPED, resolve_model

    return HFTokenizer(resolve_model(model), name=model if model in SHIPPED else None)


def build_engine(model: str | None = None, *, dtype: str | None = None, weights: str | None = None,
                 num_threads: int | None = None, **opts) -> TransformersEngine:
    """Build the engine for `model` (alias, HF directory or .gguf; None = default alias).
    The registry's factory for "embedded": callers use registry.load_backend.

    dtype: auto | float32 | bfloat16 | float16; None reads PARAREASON_DTYPE (default
    auto: measured on this CPU, see dtype_choice.py).
    weights: full | float16 | int8 | q8; None reads PARAREASON_WEIGHTS (default full).
    Other keyword options are `EngineOptions` fields (max_batch_size, prefill_chunk,
    prefix_cache_tokens, kv_initial_capacity).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from parareason.models import SHIPPED, ModelError, resolve_model
    from parareason.backends.embedded.dtype_choice import resolve_dtype
    from parareason.backends.embedded.weights import PACKED_FORMATS, WEIGHTS_ENV, check_weight_format
    from parareason.backends.embedded.model import DecoderModel, ModelConfig

    known = {f.name for f in fields(EngineOptions)}
    unknown = set(opts) - known
    if unknown:
        raise TypeError(f"unknown engine options {sorted(unknown)}; known: {sorted(known)}")
    _set_threads(num_threads)
    try:
        model_dir = resolve_model(model)
        config = ModelConfig.from_hf_dir(model_dir)
        fmt = (weights or os.environ.get(WEIGHTS_ENV) or "full").strip().lower()
        choice = resolve_dtype(dtype, config.hidden_size, config.intermediate_size,
                               float32_only=fmt in PACKED_FORMATS)  # fbgemm takes float32 activations
        check_weight_format(fmt, choice.torch_dtype)  # before the weights load
        decoder = DecoderModel.from_dir(model_dir, choice.torch_dtype, config, weights=fmt)
        tokenizer = HFTokenizer(model_dir, name=model if model in SHIPPED else None)
    except (ModelError, ValueError, OSError) as e:
        raise BackendError(f"cannot load model {model!r}: {e}") from e
    return TransformersEngine(decoder, tokenizer, EngineOptions(**opts), dtype_choice=choice)

"""Embedded CPU engine, the default backend. Entry point: `load_backend(model, **opts)`.

dtype: float32 by default. This CPU has no fast bf16 GEMM: measured with
`parareason bench engine` (qwen2.5-0.5b-coder, 2 threads, shared machine) one decode
step took 1300 ms in float32 vs 2027 ms in bfloat16 at batch 16, and 193 vs 148 ms
at batch 1 (where reading half the bytes helps). Batched decode is the workload that
matters here (n samples per prompt), and float32 keeps the dequantized GGUF weights
exact, so float32 it is. Pass dtype="bfloat16" to halve memory.

Threads: `PARAREASON_THREADS` (or the `num_threads` option) sets torch's intra-op
threads; otherwise torch's default (physical cores, or OMP_NUM_THREADS) is kept.
OpenMP threads are told to sleep rather than spin between parallel regions
(OMP_WAIT_POLICY=PASSIVE, unless set): on a machine shared with other processes a
spinning 2-thread GEMM waits for its descheduled sibling, and a batch-16 matmul
measured 3x slower (77 ms vs 25 ms) under load. Only effective when this package is
imported before torch (the CLI does so); the env var always wins.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import fields  # noqa: E402

from parareason.runtime.backends.base import BackendError  # noqa: E402
from parareason.runtime.backends.transformers_engine.engine import EngineOptions, EngineStats, TransformersEngine  # noqa: E402,E501
from parareason.runtime.backends.transformers_engine.tokenizer import HFTokenizer  # noqa: E402

__all__ = ["EngineOptions", "EngineStats", "HFTokenizer", "TransformersEngine", "load_backend", "load_tokenizer"]

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def _set_threads(num_threads: int | None) -> None:
    import torch

    n = num_threads or int(os.environ.get("PARAREASON_THREADS", "0") or 0)
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def load_tokenizer(model: str | None = None) -> HFTokenizer:
    """The tokenizer of a registry model (alias, HF dir or .gguf), without its weights."""
    from parareason.models import SHIPPED, resolve_model

    return HFTokenizer(resolve_model(model), name=model if model in SHIPPED else None)


def load_backend(model: str | None = None, *, dtype: str = "float32", num_threads: int | None = None,
                 **opts) -> TransformersEngine:
    """Build the engine for `model` (alias, HF directory or .gguf; None = default alias).

    Other keyword options are `EngineOptions` fields (max_batch_size, prefill_chunk,
    prefix_cache_tokens, kv_initial_capacity).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from parareason.models import SHIPPED, ModelError, resolve_model
    from parareason.runtime.backends.transformers_engine.model import DecoderModel

    known = {f.name for f in fields(EngineOptions)}
    unknown = set(opts) - known
    if unknown:
        raise TypeError(f"unknown engine options {sorted(unknown)}; known: {sorted(known)}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}")
    _set_threads(num_threads)
    try:
        model_dir = resolve_model(model)
        weights = DecoderModel.from_dir(model_dir, getattr(torch, _DTYPES[dtype]))
        tokenizer = HFTokenizer(model_dir, name=model if model in SHIPPED else None)
    except (ModelError, ValueError, OSError) as e:
        raise BackendError(f"cannot load model {model!r}: {e}") from e
    return TransformersEngine(weights, tokenizer, EngineOptions(**opts))

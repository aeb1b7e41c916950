"""Named profiler ranges in the decode path, free when no profile is being taken.

`region(name)` is `torch.profiler.record_function(name)` while `ranges_on()` is active
and a shared no-op context otherwise: a record_function call costs ~1-2 us even with no
profiler running, ~100 of them per step. `parareason bench profile`
(bench/decode_profile.py) turns them on and splits a step by these names.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Iterator

from torch.profiler import record_function

# The ranges of a decode step (each a prefix "pr::" in the trace); they never nest in each other.
LINEAR = "pr::linear"  # the decoder layers' matmuls (qkv, o, gate_up, down), with their inputs' RMSNorm / SwiGLU
LM_HEAD = "pr::lm_head"  # with the final RMSNorm
ATTENTION = "pr::attention"  # RoPE, KV writes, the KV gather, SDPA
SAMPLING = "pr::sampling"  # engine._sample_all: sampler and stop checks
BATCH_PREP = "pr::batch_prep"  # engine._decode's slot / mask / position tensors
C_LAYERS = "pr::c_layers"  # decode_layers.py: every decoder layer in one C call (matmuls and attention)
RANGES = (LINEAR, LM_HEAD, ATTENTION, SAMPLING, BATCH_PREP, C_LAYERS)

_NOOP = nullcontext()
_on = False


def region(name: str) -> AbstractContextManager[object]:
    return record_function(name) if _on else _NOOP


@contextmanager
def ranges_on() -> Iterator[None]:
    global _on
    before, _on = _on, True
    try:
        yield
    finally:
        _on = before

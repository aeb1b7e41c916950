"""Weight formats of the embedded engine (weights.py): full stays exact, float16, int8 and
q8 stay within their rounding, every format decodes, and bad choices fail before loading."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from parareason.backends.base import BackendError
from parareason.backends.registry import load_backend
from parareason.backends.embedded import kernel_library
from parareason.backends.embedded.weights import WEIGHTS_ENV, Linear, check_weight_format
from parareason.cli.options import engine_options
from tests.support.engine_util import TEST_MODEL

FBGEMM = "fbgemm" in torch.backends.quantized.supported_engines
needs_fbgemm = pytest.mark.skipif(not FBGEMM, reason="float16 / int8 weights need torch's fbgemm kernels (x86)")
needs_q8 = pytest.mark.skipif(kernel_library.available() is not None, reason="the q8 kernel does not build here")


def _layer(rows: int = 64, inner: int = 96, outer: int = 80, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(outer, inner, generator=g) * 0.05).bfloat16().float()  # bf16 values, as checkpoints have
    b = torch.randn(outer, generator=g) * 0.1
    return torch.randn(rows, inner, generator=g), w, b


def test_full_is_f_linear_exactly():
    x, w, b = _layer()
    assert torch.equal(Linear(w, b, "full")(x), F.linear(x, w, b))


@needs_fbgemm
def test_float16_weights_round_like_float32_sums():
    x, w, b = _layer()
    ref = (x.double() @ w.double().T + b.double()).float()
    got = Linear(w, b, "float16")(x)
    # bf16-valued weights are exact in float16: only the float32 summation order differs
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5), (got - ref).abs().max()


@needs_fbgemm
def test_int8_weights_stay_within_their_quantization_error():
    x, w, b = _layer()
    ref = x @ w.T + b
    got = Linear(w, b, "int8")(x)
    # per-channel 8-bit weights and 7-bit activations: a few percent of the output scale
    err = (got - ref).abs().max() / ref.abs().max()
    assert 0 < err < 0.05, err
    assert Linear(w, None, "int8").nbytes() == w.numel()  # one byte a weight: what a step streams


@pytest.mark.parametrize("fmt", [pytest.param("float16", marks=needs_fbgemm), pytest.param("int8", marks=needs_fbgemm),
                                 pytest.param("q8", marks=needs_q8)])
def test_packed_formats_decode_the_model_close_to_full(engine, fmt):
    packed = load_backend("embedded", TEST_MODEL, weights=fmt)  # dtype auto resolves to float32 for packed weights
    try:
        assert packed.model.weights == fmt and packed.model.dtype == torch.float32
        ids = engine.tokenizer.encode("The capital of France is Paris. The capital of Italy is")
        ref, got = engine.score_prompt(ids), packed.score_prompt(ids)
        diffs = [abs(a - b) for a, b in zip(ref.logprobs, got.logprobs)]
        mean = sum(diffs) / len(diffs)
        # float16: rounding only; int8 on this 135M model: ~0.4 nats a token (weights.py's docstring)
        # q8 (int8 activations in blocks of 32, every layer): 0.07 measured
        assert mean < {"float16": 0.01, "int8": 0.8, "q8": 0.2}[fmt], mean
    finally:
        packed.close()


def test_bad_formats_fail_before_loading(monkeypatch):
    with pytest.raises(ValueError, match="weights must be one of full, float16, int8"):
        check_weight_format("int4", torch.float32)
    if FBGEMM:
        with pytest.raises(ValueError, match="compute in float32"):
            check_weight_format("int8", torch.bfloat16)
        with pytest.raises(BackendError, match="compute in float32"):
            load_backend("embedded", TEST_MODEL, dtype="bfloat16", weights="int8")
    monkeypatch.setenv(WEIGHTS_ENV, "int4")
    with pytest.raises(BackendError, match="weights must be one of"):
        load_backend("embedded", TEST_MODEL, dtype="float32")


def test_weights_are_part_of_the_resumable_settings():
    assert engine_options("embedded", "auto") == {"dtype": "auto"}  # settings recorded before --weights match
    assert engine_options("embedded", "auto", "int8") == {"dtype": "auto", "weights": "int8"}
    assert engine_options("vllm", "auto", "int8") == {}  # a server picks its own

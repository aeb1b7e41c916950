"""The engine's dtype: explicit choices are honoured, "auto" follows the measured GEMM rates."""
from __future__ import annotations

import pytest
import torch

from parareason.backends.embedded import dtype_choice
from parareason.backends.embedded.dtype_choice import DTYPE_ENV, resolve_dtype
from parareason.backends.registry import load_backend
from tests.support.engine_util import TEST_MODEL


@pytest.fixture
def measured(monkeypatch):
    """Replace the GEMM timing with given (float32, bfloat16) GFLOPS."""
    def use(f32: float, bf16: float) -> None:
        monkeypatch.setattr(dtype_choice, "_measure", lambda inner, outer: (f32, bf16, False))
    monkeypatch.delenv(DTYPE_ENV, raising=False)
    return use


def test_auto_takes_bfloat16_only_when_clearly_faster(measured):
    measured(220.0, 932.0)  # AMX-class CPU
    assert resolve_dtype("auto", 896, 4864).dtype == "bfloat16"
    measured(75.0, 20.0)  # no bf16 instructions
    assert resolve_dtype("auto", 896, 4864).dtype == "float32"
    measured(100.0, 120.0)  # near a tie: keep the exact float32
    choice = resolve_dtype(None, 896, 4864)
    assert choice.dtype == "float32" and choice.requested == "auto"
    assert "120" in choice.describe() and "100" in choice.describe()


def test_explicit_dtype_and_env_var_skip_the_measurement(measured, monkeypatch):
    measured(1.0, 1000.0)
    assert resolve_dtype("fp32", 896, 4864).dtype == "float32"
    monkeypatch.setenv(DTYPE_ENV, "float32")
    assert resolve_dtype(None, 896, 4864).dtype == "float32"
    assert resolve_dtype("bf16", 896, 4864).torch_dtype == torch.bfloat16  # argument beats env


def test_unknown_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match="dtype must be auto or one of"):
        resolve_dtype("int3", 896, 4864)


def test_gemm_probe_measures_a_positive_rate():
    assert dtype_choice.gemm_gflops(torch.float32, 4, 32, 64, reps=2) > 0


def test_engine_loads_in_the_chosen_dtype(measured):
    measured(220.0, 932.0)
    eng = load_backend("embedded", TEST_MODEL, dtype="auto")
    assert eng.dtype_choice.dtype == "bfloat16"
    assert eng.model.embed.dtype == torch.bfloat16 and eng.pool.k.dtype == torch.bfloat16
    eng.close()


@pytest.fixture
def probe_env(tmp_path, monkeypatch):
    """A fresh probe cache and a scripted GEMM timer: rates[dtype] is popped per call."""
    monkeypatch.setenv("PARAREASON_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(DTYPE_ENV, raising=False)
    monkeypatch.delenv(dtype_choice.PROBE_ENV, raising=False)
    dtype_choice._measure.cache_clear()
    rates: dict[torch.dtype, list[float]] = {}

    def fake_gemm(dtype, rows, inner, outer, reps=5):
        return rates[dtype].pop(0)

    monkeypatch.setattr(dtype_choice, "gemm_gflops", fake_gemm)
    yield rates
    dtype_choice._measure.cache_clear()


def test_probe_keeps_each_dtypes_best_round_so_one_slow_float32_round_does_not_flip_it(probe_env):
    # Round 1 ran while another process held the cores: float32 looked 2 GFLOPS, bf16 3.
    probe_env[torch.float32] = [2.0, 70.0, 75.0]
    probe_env[torch.bfloat16] = [3.0, 20.0, 19.0]
    choice = resolve_dtype("auto", 896, 4864)
    assert choice.dtype == "float32"
    assert (choice.float32_gflops, choice.bfloat16_gflops) == (75.0, 20.0)
    assert "best of 3 rounds" in choice.describe()


def test_probe_result_is_cached_per_cpu_and_reused_by_later_processes(probe_env, monkeypatch):
    probe_env[torch.float32] = [200.0] * 3
    probe_env[torch.bfloat16] = [900.0] * 3
    assert resolve_dtype("auto", 896, 4864).dtype == "bfloat16"
    dtype_choice._measure.cache_clear()  # as in a new process
    probe_env[torch.float32] = []  # measuring again would pop from an empty list
    again = resolve_dtype("auto", 896, 4864)
    assert again.dtype == "bfloat16" and again.cached and "cached probe" in again.describe()
    assert dtype_choice.cpu_model() in (dtype_choice._probe_file()).read_text()
    dtype_choice._measure.cache_clear()
    monkeypatch.setenv(dtype_choice.PROBE_ENV, "fresh")  # asks for a new measurement
    probe_env[torch.float32] = [80.0] * 3
    probe_env[torch.bfloat16] = [20.0] * 3
    assert resolve_dtype("auto", 896, 4864).dtype == "float32"

"""`parareason bench profile` (bench/decode_profile.py) on a tiny random-weight engine:
the step's split adds up, every range is seen, and the ranges cost nothing when off."""
from __future__ import annotations

from contextlib import nullcontext

import pytest
from torch.profiler import record_function

from parareason.backends.embedded import profiling
from parareason.bench.decode_profile import (CATEGORIES, ProfileConfig, context_tokens, copy_bandwidth, decode_paths,
                                             profile_batch, read_bandwidth, render)
from tests.support.tiny_model import tiny_engine


@pytest.fixture(scope="module")
def tiny():
    eng = tiny_engine(max_batch_size=8)
    yield eng
    eng.close()


def test_ranges_are_a_shared_no_op_unless_turned_on():
    assert isinstance(profiling.region(profiling.LINEAR), nullcontext)
    assert profiling.region(profiling.LINEAR) is profiling.region(profiling.ATTENTION)
    with profiling.ranges_on():
        assert isinstance(profiling.region(profiling.LINEAR), record_function)
    assert isinstance(profiling.region(profiling.LINEAR), nullcontext)


@pytest.mark.parametrize("batch", [1, 5])
def test_the_split_adds_up_to_the_profiled_step_and_sees_every_part(tiny, batch):
    cfg = ProfileConfig(steps=3, warmup=1, context=40)
    ids = context_tokens(tiny.tokenizer, cfg.context)
    assert len(ids) >= 40
    r = profile_batch(tiny, ids, batch, cfg)
    assert set(r.split_ms) == set(CATEGORIES)
    assert sum(r.split_ms.values()) == pytest.approx(r.profiled_ms, rel=1e-9)
    # every part of the step ran inside its range, and the ranges do not overlap (other >= 0)
    assert all(r.split_ms[c] > 0 for c in CATEGORIES if c not in ("other", "c_layers")), r.split_ms
    assert r.layers == "python" and r.split_ms["c_layers"] == 0  # full weights: the Python loop
    assert r.split_ms["other"] >= 0, r.split_ms
    assert r.step_ms > 0 and r.top_ops
    # the engine is left empty: the next batch size starts clean
    assert not tiny.running and not tiny.waiting and not tiny.has_work()


def test_render_has_a_row_per_batch_and_the_floor_ratio(tiny):
    cfg = ProfileConfig(steps=2, warmup=0, batches=(1, 3))
    ids = context_tokens(tiny.tokenizer, 20)
    own_path = tiny.model.decode_attention
    rows = [profile_batch(tiny, ids, b, cfg, shared, path) for b in cfg.batches for shared in (True, False)
            for path in {own_path, "torch"}]
    assert tiny.options.shared_prefix_attention  # the engine keeps its own setting
    assert tiny.model.decode_attention == own_path and {r.attention for r in rows} == {own_path, "torch"}
    bw, copy_rate = read_bandwidth(16 << 20, reps=2), copy_bandwidth(16 << 20, reps=2)
    assert bw > 1e8 and copy_rate > 1e8  # bytes/s: any real machine reads and copies faster than 100 MB/s
    md = render(cfg, rows, tiny.model.streamed_weight_bytes(), bw, copy_rate)
    assert f"read bandwidth {bw / 1e9:.1f} GB/s" in md and f"copy bandwidth {copy_rate / 1e9:.1f} GB/s" in md
    floor = tiny.model.streamed_weight_bytes() / bw * 1000
    for r in rows:
        read = "once a step" if r.shared_prefix else "once a row"
        assert f"| {r.batch} | {read} | {r.attention} | {r.layers} | {r.step_ms:.1f} |" in md and f"| {r.step_ms / floor:.2f} |" in md


def test_decode_paths_pair_torch_attention_with_the_python_loop_only():
    cfg = ProfileConfig(attention=("c", "torch"), layers=("c", "python"))
    assert decode_paths(cfg) == [("c", "c"), ("c", "python"), ("torch", "python")]
    assert decode_paths(ProfileConfig(attention=("c",))) == [("c", None)]  # the model's own layers path


def test_layers_in_one_c_call_have_their_own_range(tiny):
    import torch

    from parareason.backends.embedded import kernel_library
    from parareason.backends.embedded.engine import EngineOptions, TransformersEngine
    from parareason.backends.embedded.model import DecoderModel
    from tests.support.tiny_model import tiny_config, tiny_state

    if (why := kernel_library.available()) is not None:
        pytest.skip(f"C kernels unavailable: {why}")
    cfg = tiny_config(len(tiny.tokenizer))
    eng = TransformersEngine(DecoderModel(cfg, tiny_state(cfg), torch.float32, weights="q8"), tiny.tokenizer,
                             EngineOptions(max_batch_size=4))
    try:
        ids = context_tokens(eng.tokenizer, 20)
        prof = ProfileConfig(steps=2, warmup=1, context=20)
        in_c = profile_batch(eng, ids, 2, prof, layers="c")
        loop = profile_batch(eng, ids, 2, prof, layers="python")
        assert eng.model.decode_layers == "c"  # left as it was
        assert (in_c.layers, loop.layers) == ("c", "python")
        assert in_c.split_ms["c_layers"] > 0 and in_c.split_ms["matmul"] == in_c.split_ms["attention"] == 0
        assert loop.split_ms["c_layers"] == 0 and loop.split_ms["matmul"] > 0 and loop.split_ms["attention"] > 0
        with pytest.raises(RuntimeError, match="need q8 weights"):
            profile_batch(tiny, ids, 1, prof, layers="c")
    finally:
        eng.close()


@pytest.mark.parametrize("args, message", [
    (["--layers", "c"], "with --weights q8 only"),
    (["--weights", "q8", "--layers", "c,numpy"], "out of c, python"),
    (["--attention", "cuda"], "out of c, torch")])
def test_bench_profile_refuses_bad_paths_before_loading(args, message, tmp_path):
    from click.testing import CliRunner

    from parareason.cli.main import main

    res = CliRunner().invoke(main, ["bench", "profile", *args, "--out", str(tmp_path / "B.md")])
    assert res.exit_code == 2 and message in res.output

"""`parareason bench profile`: where one decode step of the embedded engine goes.

For each batch size B: B sequences of one chat prompt (a question repeated to about
`context` tokens, prefilled once and shared, as n samples of one prompt), then `engine.step()` timed
`steps` times without a profiler (the step time) and `steps` times under
torch.profiler with the engine's named ranges on (profiling.py). The profiled step is
split into matmuls (decoder layers' linear layers), LM head, attention (RoPE, KV
writes, KV gather, SDPA), the decoder layers as one C call where they run so
(decode_layers.py: its matmuls and attention are not told apart), sampling (sampler +
stop checks), batch prep (the decode inputs' slot / mask tensors) and other (norms,
residuals, embedding, Python), which is the profiled step minus the ranges: the split
adds up to the profiled step.

Each batch size runs twice, with the shared prompt's KV read once per step for all rows
(attention.py, the engine's default) and once per row (as the engine did before), so
the two attention columns compare in one run; so do the decode paths asked for
(`attention`: C or torch; `layers`: the decoder layers in one C call, or model.forward's
Python loop).

The weight-streaming floor is the bytes of weights a step reads over the read bandwidth
measured in the same run (best of a few sums over a 512 MB tensor, larger than any cache):
weights are only read. A copy's bandwidth (bytes read + written) is printed beside it, as
earlier runs used it. The issue's goal is a batch-1 step within 1.3x of the floor.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from parareason.io.summary import markdown_table
from parareason.models import DEFAULT_MODEL

CATEGORIES = ("matmul", "lm_head", "attention", "c_layers", "sampling", "batch_prep", "other")
STEP = "pr::step"


@dataclass
class ProfileConfig:
    model: str = DEFAULT_MODEL
    dtype: str = "float32"
    weights: str = "full"
    batches: tuple[int, ...] = (1, 64)
    context: int = 180  # tokens per row before decoding (at least; a whole chat prompt)
    steps: int = 8  # timed steps, and again profiled steps, per batch size
    warmup: int = 3
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    shared_prefix: tuple[bool, ...] = (True, False)  # prompt KV read once per step / once per row
    attention: tuple[str, ...] = ("c",)  # decode attention paths (model.decode_attention), "c" and / or "torch"
    layers: tuple[str, ...] = ()  # decoder layer paths (model.decode_layers), "c" / "python"; () the model's own
    out_path: str | None = "BENCHMARKS.md"  # None: print only


@dataclass
class StepProfile:
    batch: int
    shared_prefix: bool  # the prompt's KV read once per step for all rows
    attention: str  # the decode attention path that ran: "c" or "torch"
    layers: str  # the decoder layers' path that ran: "c" (one C call) or "python"
    step_ms: float  # median, no profiler
    profiled_ms: float  # mean step under the profiler
    split_ms: dict[str, float] = field(default_factory=dict)  # CATEGORIES -> ms, sums to profiled_ms
    top_ops: list[tuple[str, float]] = field(default_factory=list)  # (op, self ms per step)


def split_step(events: Any, steps: int) -> tuple[float, dict[str, float]]:
    """(profiled ms per step, CATEGORIES -> ms per step) from `prof.key_averages()`.

    Every range is counted with its children; the ranges never nest in each other, and
    "other" is the step minus them, so the split adds up to the step."""
    from parareason.backends.embedded import profiling as pr

    total = {e.key: e.cpu_time_total / 1000.0 / steps for e in events}
    names = {"matmul": pr.LINEAR, "lm_head": pr.LM_HEAD, "attention": pr.ATTENTION, "c_layers": pr.C_LAYERS,
             "sampling": pr.SAMPLING, "batch_prep": pr.BATCH_PREP}
    split = {cat: total.get(name, 0.0) for cat, name in names.items()}
    step = total.get(STEP, 0.0)
    split["other"] = step - sum(split.values())
    return step, split


def _top_ops(events: Any, steps: int, n: int = 6) -> list[tuple[str, float]]:
    ops = [e for e in events if not e.key.startswith("pr::")]
    ops.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / 1000.0 / steps) for e in ops[:n]]


def profile_batch(engine: Any, context_ids: list[int], batch: int, cfg: ProfileConfig,
                  shared_prefix: bool = True, attention: str | None = None, layers: str | None = None) -> StepProfile:
    """Time and profile decode steps of `batch` rows of `context_ids` in `engine` (left
    with the shared-prefix setting and decode paths it had; None: its own path)."""
    model = engine.model
    before, before_path, before_layers = engine.options.shared_prefix_attention, model.decode_attention, \
        model.decode_layers
    try:
        if attention is not None:
            if attention == "c" and before_path != "c":
                raise RuntimeError("decode attention in C is not available for this model here")
            model.decode_attention = attention
        if layers is not None:
            if layers == "c" and not model.layers_fit_c():
                raise RuntimeError("decoder layers in one C call need q8 weights and decode attention in C")
            model.decode_layers = layers
        return _profile_batch(engine, context_ids, batch, cfg, shared_prefix)
    finally:
        engine.options.shared_prefix_attention = before
        model.decode_attention, model.decode_layers = before_path, before_layers


def _profile_batch(engine: Any, context_ids: list[int], batch: int, cfg: ProfileConfig,
                   shared_prefix: bool) -> StepProfile:
    from torch.profiler import ProfilerActivity, profile, record_function

    from parareason.backends.base import GenerationRequest, SamplingParams
    from parareason.backends.embedded.profiling import ranges_on

    engine.prefix_cache.clear()
    engine.options.shared_prefix_attention = shared_prefix
    budget = 2 * (cfg.warmup + 2 * cfg.steps) + 4  # never finishes while measured
    for b in range(batch):
        p = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed + b,
                           max_new_tokens=budget, ignore_eos=True)
        engine.submit(GenerationRequest(f"profile{b}", tuple(context_ids), p))
    engine.step()  # admission: prefill once, the other rows share it
    if len(engine.running) != batch:
        raise RuntimeError(f"{batch - len(engine.running)} of {batch} rows did not start")
    for _ in range(cfg.warmup):
        engine.step()
    times = []
    for _ in range(cfg.steps):
        t0 = time.perf_counter()
        engine.step()
        times.append((time.perf_counter() - t0) * 1000.0)
    with ranges_on(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(cfg.steps):
            with record_function(STEP):
                engine.step()
    for seq_id in list(engine.running):
        engine.abort(seq_id)
    engine.step()  # report the aborts; nothing is left
    events = prof.key_averages()
    profiled, split = split_step(events, cfg.steps)
    model = engine.model
    layers = "c" if model.layers_run_in_c else "python"
    return StepProfile(batch, shared_prefix, model.decode_attention, layers, statistics.median(times), profiled, split,
                       _top_ops(events, cfg.steps))


def copy_bandwidth(nbytes: int = 256 << 20, reps: int = 5) -> float:
    """Memory bandwidth in bytes/s: best of `reps` copies of an `nbytes` tensor (read + write)."""
    import torch

    src = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def read_bandwidth(nbytes: int = 512 << 20, reps: int = 5) -> float:
    """Memory read bandwidth in bytes/s: best of `reps` sums over an `nbytes` tensor."""
    import torch

    src = torch.ones(nbytes // 4, dtype=torch.float32)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        src.sum()
        best = min(best, time.perf_counter() - t0)
    return nbytes / best


QUESTION = ("A baker sells 48 loaves on Monday and half as many on Tuesday; each loaf costs 3 dollars. "
            "How much money does the baker take in over the two days? Think step by step.")


def context_tokens(tokenizer: Any, n: int) -> list[int]:
    """A chat prompt of at least n tokens (the question repeated), so that the sampled
    distributions are those of a real answer (a random context flattens them, and top-p
    then takes its full-sort fallback at every step)."""
    k = 1
    while len(ids := tokenizer.chat_ids([{"role": "user", "content": " ".join([QUESTION] * k)}])) < n:
        k += 1
    return ids


def render(cfg: ProfileConfig, rows: list[StepProfile], weight_bytes: int, bandwidth: float,
           copy_rate: float | None = None) -> str:
    """`bandwidth`: the read rate the floor divides by; `copy_rate`: a copy's, for reference."""
    floor_ms = weight_bytes / bandwidth * 1000.0
    table = markdown_table(
        ["batch", "prompt KV read", "attention", "layers", "step ms", "tok/s", "profiled step ms", *CATEGORIES, "weight floor ms",
         "step / floor"],
        [[str(r.batch), _read_label(r), r.attention, r.layers, f"{r.step_ms:.1f}", f"{r.batch * 1000 / r.step_ms:.1f}", f"{r.profiled_ms:.1f}",
          *(f"{r.split_ms[c]:.1f} ({100 * r.split_ms[c] / r.profiled_ms:.0f}%)" for c in CATEGORIES),
          f"{floor_ms:.1f}", f"{r.step_ms / floor_ms:.2f}"] for r in rows])
    ops = "\n".join(f"- batch {r.batch}, {_read_label(r)}, {r.attention}, layers {r.layers}: " + ", ".join(f"{n} {ms:.1f}" for n, ms in r.top_ops) for r in rows)
    return (f"{cfg.model}, dtype {cfg.dtype}, weights {cfg.weights}; {cfg.context}-token chat prompt shared by "
            f"the rows, temperature {cfg.temperature}, top-p {cfg.top_p}; step ms: median of {cfg.steps} steps "
            f"after {cfg.warmup} warm-up; split: ms per step (share) under torch.profiler, which adds its own "
            f"overhead (profiled step > step).\n\n{table}\n"
            f"Weights read per step: {weight_bytes / 1e6:.0f} MB; read bandwidth {bandwidth / 1e9:.1f} GB/s "
            f"(sum over a 512 MB tensor, best of 5: the floor's divisor)"
            + (f"; copy bandwidth {copy_rate / 1e9:.1f} GB/s (256 MB copy, read + write)" if copy_rate else "")
            + f". Top ops by self time (ms per step):\n\n{ops}\n")


def _read_label(r: StepProfile) -> str:
    return "once a step" if r.shared_prefix else "once a row"


def decode_paths(cfg: ProfileConfig) -> list[tuple[str, str | None]]:
    """(attention, layers) pairs to profile: torch attention runs the Python loop only."""
    pairs = []
    for path in cfg.attention:
        for layers in (cfg.layers or (None,)) if path == "c" else ("python",):
            if (path, layers) not in pairs:
                pairs.append((path, layers))
    return pairs


def run_decode_profile(cfg: ProfileConfig) -> tuple[list[StepProfile], str]:
    from parareason.backends.registry import load_backend
    from parareason.bench.report import write_section

    engine = load_backend("embedded", cfg.model, dtype=cfg.dtype, weights=cfg.weights, max_batch_size=max(cfg.batches),
                          kv_initial_capacity=cfg.context + max(cfg.batches) * (2 * cfg.steps + cfg.warmup + 8))
    try:
        ids = context_tokens(engine.tokenizer, cfg.context)
        cfg = replace(cfg, context=len(ids))
        bandwidth, copy_rate = read_bandwidth(), copy_bandwidth()
        rows = [profile_batch(engine, ids, b, cfg, shared, path, layers) for b in cfg.batches
                for path, layers in decode_paths(cfg) for shared in cfg.shared_prefix]
        md = render(cfg, rows, engine.model.streamed_weight_bytes(), bandwidth, copy_rate)
    finally:
        engine.close()
    print(md)
    if cfg.out_path:
        print(f"wrote {write_section('Decode step profile', md, Path(cfg.out_path))}")
    return rows, md

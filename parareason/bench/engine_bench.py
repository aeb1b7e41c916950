"""`parareason bench engine`: embedded engine vs transformers `generate` on n samples.

Both run the same weights in the same dtype (the engine's choice, `--dtype auto` by
default: see dtype_choice.py) on the same chat prompt with the same sampling
settings and token budget, in one process, one after the other:

* engine: n sequences of one prompt (prompt prefilled once, batched decode, a row
  leaves the batch at its EOS);
* generate: `model.generate(num_return_sequences=n, do_sample=True)`, which prefills
  n copies and keeps decoding every row until the last one ends.

Useful tokens are each row's tokens up to and including its EOS (the engine produces
no others). Also measured: time to first token (prefill + first sample) for n=1 vs
n, and one decode step in float32 vs bfloat16 (what `--dtype auto` decides from).
"""
from __future__ import annotations

import gc
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from parareason.models import DEFAULT_MODEL

DEFAULT_PROMPT = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
                  "in May. How many clips did Natalia sell altogether in April and May? "
                  "Answer briefly and end with the number.")


@dataclass
class Run:
    label: str
    useful_tokens: int
    seconds: float
    row_tokens: list[int]

    @property
    def tokens_per_s(self) -> float:
        return self.useful_tokens / self.seconds if self.seconds > 0 else 0.0


def _params(temperature: float, top_p: float, max_new_tokens: int, seed: int, ignore_eos: bool = False):
    from parareason.backends.base import SamplingParams

    return SamplingParams(temperature=temperature, top_p=top_p, top_k=0, seed=seed,
                          max_new_tokens=max_new_tokens, ignore_eos=ignore_eos)


def _run_engine(engine, ids: list[int], n: int, temperature: float, top_p: float, max_new_tokens: int,
                seed: int) -> Run:
    from parareason.backends.base import GenerationRequest

    engine.prefix_cache.clear()
    rows: dict[str, int] = {}
    t0 = time.perf_counter()
    for i in range(n):
        engine.submit(GenerationRequest(f"row{i}", tuple(ids), _params(temperature, top_p, max_new_tokens, seed + i)))
    while engine.has_work():
        for u in engine.step():
            rows[u.seq_id] = rows.get(u.seq_id, 0) + len(u.token_ids)
    secs = time.perf_counter() - t0
    counts = [rows[f"row{i}"] for i in range(n)]
    return Run("engine", sum(counts), secs, counts)


def _time_to_first_token(engine, ids: list[int], n: int, reps: int) -> float:
    """Median seconds of the step that prefills n copies of `ids` and samples one token each."""
    from parareason.backends.base import GenerationRequest

    times = []
    for r in range(reps):
        engine.prefix_cache.clear()
        for i in range(n):
            engine.submit(GenerationRequest(f"ttft{r}-{i}", tuple(ids), _params(1.0, 1.0, 1, i)))
        t0 = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - t0)
        while engine.has_work():
            engine.step()
    return statistics.median(times)


def _run_generate(model_dir, ids: list[int], n: int, temperature: float, top_p: float, max_new_tokens: int,
                  seed: int, eos_ids: frozenset[int], dtype: str) -> Run:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=getattr(torch, dtype))
    torch.manual_seed(seed)
    x = torch.tensor([ids])
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=True, temperature=temperature,
                             top_p=top_p, top_k=0, max_new_tokens=max_new_tokens, num_return_sequences=n,
                             eos_token_id=sorted(eos_ids), pad_token_id=sorted(eos_ids)[0])
        secs = time.perf_counter() - t0
    counts = []
    for row in out[:, len(ids):].tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
        counts.append(end)
    del model
    gc.collect()
    return Run("generate", sum(counts), secs, counts)


def _decode_step_ms(model_name: str, dtype: str, ids: list[int], batch: int, steps: int) -> float:
    from parareason.backends.base import GenerationRequest
    from parareason.backends.embedded import load_backend

    engine = load_backend(model_name, dtype=dtype)
    for i in range(batch):
        engine.submit(GenerationRequest(f"d{i}", tuple(ids), _params(1.0, 1.0, steps + 2, i, ignore_eos=True)))
    engine.step()  # prefill + first decode (warm-up)
    s0, f0 = engine.stats.decode_s, engine.stats.decode_forwards
    for _ in range(steps):
        engine.step()
    ms = 1000 * (engine.stats.decode_s - s0) / max(engine.stats.decode_forwards - f0, 1)
    engine.close()
    del engine
    gc.collect()
    return ms


@dataclass
class EngineBenchConfig:
    model: str = DEFAULT_MODEL
    n: int = 16  # samples of the prompt
    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    ttft_reps: int = 3  # repetitions of the prefill timing
    dtype_check: bool = True  # also time one decode step in float32 and bfloat16
    dtype: str = "auto"  # engine dtype; generate runs in the same one
    out_path: str | Path = "BENCHMARKS.md"


def run_engine_bench(cfg: EngineBenchConfig) -> Path:
    """Useful tokens/s of the engine vs transformers generate; prefill n vs 1."""
    model, n, max_new_tokens, temperature, top_p, seed = (cfg.model, cfg.n, cfg.max_new_tokens, cfg.temperature,
                                                           cfg.top_p, cfg.seed)
    prompt, ttft_reps, dtype_check, dtype, out_path = cfg.prompt, cfg.ttft_reps, cfg.dtype_check, cfg.dtype, cfg.out_path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from parareason.backends.embedded import load_backend  # first: sets OpenMP env before torch

    import torch

    from parareason.bench.report import write_section
    from parareason.models import resolve_model

    load_start = os.getloadavg()[0]
    model_dir = resolve_model(model)
    eng = load_backend(model, dtype=dtype)
    chosen = eng.dtype_choice
    ids = eng.tokenizer.chat_ids([{"role": "user", "content": prompt}])
    eos_ids = eng.tokenizer.eos_token_ids
    print(f"model {model}, prompt {len(ids)} tokens, n={n}, max_new_tokens={max_new_tokens}, "
          f"T={temperature}, top_p={top_p}, seed={seed}, torch threads {torch.get_num_threads()}")

    ttft1 = _time_to_first_token(eng, ids, 1, ttft_reps)
    ttftn = _time_to_first_token(eng, ids, n, ttft_reps)
    print(f"time to first token: n=1 {ttft1:.3f}s, n={n} {ttftn:.3f}s (ratio {ttftn / ttft1:.2f})")

    before = eng.stats.decode_rows, eng.stats.decode_forwards
    e_run = _run_engine(eng, ids, n, temperature, top_p, max_new_tokens, seed)
    rows, fwd = eng.stats.decode_rows - before[0], eng.stats.decode_forwards - before[1]
    print(f"engine:   {e_run.useful_tokens} useful tokens in {e_run.seconds:.1f}s = "
          f"{e_run.tokens_per_s:.1f} tok/s (mean batch {rows / max(fwd, 1):.1f} rows over {fwd} forwards)")
    eng.close()
    del eng
    gc.collect()

    g_run = _run_generate(model_dir, ids, n, temperature, top_p, max_new_tokens, seed, eos_ids, chosen.dtype)
    print(f"generate: {g_run.useful_tokens} useful tokens in {g_run.seconds:.1f}s = "
          f"{g_run.tokens_per_s:.1f} tok/s")
    ratio = e_run.tokens_per_s / g_run.tokens_per_s if g_run.tokens_per_s else float("nan")
    print(f"useful-token throughput ratio engine/generate: {ratio:.2f} (target >= 1.5)")

    dtype_rows = ""
    if dtype_check:
        lines = []
        for batch in (1, n):
            f32 = _decode_step_ms(model, "float32", ids, batch, 4)
            bf16 = _decode_step_ms(model, "bfloat16", ids, batch, 4)
            print(f"decode step, batch {batch}: float32 {f32:.0f} ms, bfloat16 {bf16:.0f} ms")
            lines.append(f"| {batch} | {f32:.0f} | {bf16:.0f} |")
        dtype_rows = ("\nOne decode step (mean of 4, after warm-up), engine:\n\n"
                      "| batch | float32 ms | bfloat16 ms |\n|---|---|---|\n" + "\n".join(lines) + "\n")

    body = f"""
Model `{model}`, both in {chosen.dtype} (engine dtype: {chosen.describe()}), {n} samples of one chat prompt ({len(ids)} tokens, GSM8K-style
question), temperature {temperature}, top-p {top_p}, top-k off, max_new_tokens {max_new_tokens},
seed {seed} (engine: seeds {seed}..{seed + n - 1} per row), torch threads {torch.get_num_threads()}.
Useful tokens = each row's tokens up to and including its EOS.

| | useful tokens | seconds | useful tok/s |
|---|---|---|---|
| engine | {e_run.useful_tokens} | {e_run.seconds:.1f} | {e_run.tokens_per_s:.1f} |
| transformers generate(num_return_sequences={n}) | {g_run.useful_tokens} | {g_run.seconds:.1f} | {g_run.tokens_per_s:.1f} |

- ratio engine / generate: **{ratio:.2f}x** (target >= 1.5x)
- rows' lengths, engine: {sorted(e_run.row_tokens)}; generate: {sorted(g_run.row_tokens)}
- engine mean decode batch {rows / max(fwd, 1):.1f} rows over {fwd} forwards
- time to first token (prefill + first sample), median of {ttft_reps}: n=1 {ttft1:.3f} s, n={n} {ttftn:.3f} s,
  ratio **{ttftn / ttft1:.2f}** (target <= 1.3)
{dtype_rows}
Machine load average (1 min): {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end (on a shared
machine other jobs slow both sides; the two runs are sequential, so the ratio is noisy).
"""
    path = write_section("Embedded engine vs transformers generate", body, path=out_path)
    print(f"wrote {path}")
    return path

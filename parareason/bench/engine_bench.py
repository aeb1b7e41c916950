"""`parareason bench engine`: the embedded engine against llama.cpp and vLLM CPU, at n=1, 16, 64.

One chat prompt, n samples of `max_new_tokens`, the same sampling settings everywhere,
one engine computing at a time:

* embedded: one engine per weight format (`--weights full,float16,int8,q8`), n sequences of
  the prompt (prefilled once, batched decode, a row leaves the batch at its EOS); also
  its time to first token for 16 copies vs one (prefill n vs 1);
* the anchors (engine_anchors.py), each when installed, else skipped with how to install
  it: llama.cpp's `llama-batched-bench -pps` on the shipped Q4 GGUF, vLLM CPU as the
  bench's own float32 server (started last), and optionally transformers `generate`
  (`num_return_sequences=n`, every row decodes until the last one ends).

Useful tokens are each row's tokens up to and including its EOS (the engine produces
no others). The section in BENCHMARKS.md holds every row, the ratios of the best
embedded format to each anchor at each n, and one decode step in float32 vs bfloat16
(what `--dtype auto` decides from).
"""
from __future__ import annotations

import gc
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from parareason.bench.engine_anchors import (DEFAULT_ANCHORS, SpeedRow, best_embedded, llama_cpp_rows,
                                             render_detail, render_speed_table, requests_note, skip_reason,
                                             vllm_rows)
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
    from parareason.backends.registry import load_backend

    engine = load_backend("embedded", model_name, dtype=dtype)
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
    ns: tuple[int, ...] = (1, 16, 64)  # samples of the prompt, one run each
    weights: tuple[str, ...] = ("full", "float16", "int8", "q8")  # embedded weight formats, one engine each
    anchors: tuple[str, ...] = DEFAULT_ANCHORS  # llama.cpp, vllm, generate (engine_anchors.py)
    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    # n=1 is one short request that may end at EOS after a few tokens (seed 0 answered in 21):
    # it runs this many requests one after another (seeds seed, seed+1, ...) and sums them
    n1_requests: int = 8
    ttft_n: int = 16  # prefill of n copies vs one
    ttft_reps: int = 3  # repetitions of the prefill timing
    dtype_check: bool = True  # also time one decode step in float32 and bfloat16
    dtype: str = "auto"  # compute dtype of `full` weights; generate runs in the same one
    llama_threads: int = 2  # llama-batched-bench -t
    out_path: str | Path = "BENCHMARKS.md"


def request_seeds(cfg: EngineBenchConfig, n: int) -> list[int]:
    """The seeds of the requests timed at this n: several at n=1 (see n1_requests), else one."""
    return [cfg.seed + r for r in range(cfg.n1_requests if n == 1 else 1)]


TITLE = "Embedded engine vs llama.cpp and vLLM CPU (bench engine)"
OLD_TITLES = ("Embedded engine vs transformers generate",)  # this bench's section before the anchors


def section_title() -> str:
    """TITLE, or a title of its own where the kernels or llama.cpp are built for another CPU
    than this one: those figures stand beside the native ones."""
    from parareason.bench.report import foreign_builds

    parts = foreign_builds()
    return f"{TITLE.removesuffix(')')}, {', '.join(parts)})" if parts else TITLE


def _embedded_rows(cfg: EngineBenchConfig, fmt: str, ids: list[int]) -> tuple[list[SpeedRow], str, str]:
    """One weight format: its rows (one per n), a prefill line, and its compute dtype."""
    from parareason.backends.registry import load_backend

    eng = load_backend("embedded", cfg.model, dtype=cfg.dtype, weights=fmt)
    dtype = eng.dtype_choice.dtype
    label = f"embedded {fmt} ({dtype})" if fmt == "full" else f"embedded {fmt}"
    _run_engine(eng, ids, 2, cfg.temperature, cfg.top_p, 4, cfg.seed)  # warm-up
    ttft1 = _time_to_first_token(eng, ids, 1, cfg.ttft_reps)
    ttftn = _time_to_first_token(eng, ids, cfg.ttft_n, cfg.ttft_reps)
    prefill = (f"{label}: time to first token n=1 {ttft1:.3f} s, n={cfg.ttft_n} {ttftn:.3f} s, "
               f"ratio **{ttftn / ttft1:.2f}** (target <= 1.3); dtype {eng.dtype_choice.describe()}")
    print(prefill.replace("**", ""))
    rows = []
    for n in cfg.ns:
        before = eng.stats.decode_rows, eng.stats.decode_forwards
        seeds = request_seeds(cfg, n)
        runs = [_run_engine(eng, ids, n, cfg.temperature, cfg.top_p, cfg.max_new_tokens, s) for s in seeds]
        run = Run("engine", sum(r.useful_tokens for r in runs), sum(r.seconds for r in runs),
                  [t for r in runs for t in r.row_tokens])
        batch_rows, fwd = eng.stats.decode_rows - before[0], eng.stats.decode_forwards - before[1]
        note = "; ".join(filter(None, [f"mean decode batch {batch_rows / max(fwd, 1):.1f} over {fwd} forwards",
                                       requests_note(seeds)]))
        rows.append(SpeedRow(label, n, run.useful_tokens, run.seconds, note, embedded=True))
        print(f"{label} n={n}: {run.useful_tokens} useful tokens in {run.seconds:.1f}s = {run.tokens_per_s:.1f} tok/s")
    eng.close()
    del eng
    gc.collect()
    return rows, prefill, dtype


def _dtype_table(cfg: EngineBenchConfig, ids: list[int]) -> str:
    lines = []
    for batch in sorted({1, max(cfg.ns)}):
        f32 = _decode_step_ms(cfg.model, "float32", ids, batch, 4)
        bf16 = _decode_step_ms(cfg.model, "bfloat16", ids, batch, 4)
        print(f"decode step, batch {batch}: float32 {f32:.0f} ms, bfloat16 {bf16:.0f} ms")
        lines.append(f"| {batch} | {f32:.0f} | {bf16:.0f} |")
    return ("One decode step of `full` weights (mean of 4, after warm-up):\n\n"
            "| batch | float32 ms | bfloat16 ms |\n|---|---|---|\n" + "\n".join(lines) + "\n")


def _anchor_rows(cfg: EngineBenchConfig, anchor: str, model_dir: Path, ids: list[int], eos_ids: frozenset[int],
                 dtype: str) -> tuple[list[SpeedRow], str]:
    if anchor == "generate":
        rows = []
        for n in cfg.ns:
            run = _run_generate(model_dir, ids, n, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed,
                                eos_ids, dtype)
            rows.append(SpeedRow(f"transformers generate ({dtype})", n, run.useful_tokens, run.seconds,
                                 "num_return_sequences=n; rows decode until the last ends"))
        return rows, f"transformers generate: {dtype}, one call per n"
    if anchor == "llama.cpp":
        return llama_cpp_rows(cfg.model, len(ids), cfg.max_new_tokens, cfg.ns, cfg.llama_threads)
    return vllm_rows(cfg.model, ids, cfg.ns, cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed,
                     seeds_for=lambda n: request_seeds(cfg, n))


def run_engine_bench(cfg: EngineBenchConfig) -> Path:
    """Useful tokens/s of each embedded weight format and of the installed anchors, at each n."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from parareason.backends.embedded import load_tokenizer  # first: sets OpenMP env before torch

    import torch

    from parareason.bench.report import write_section
    from parareason.models import resolve_model

    load_start = os.getloadavg()[0]
    model_dir = resolve_model(cfg.model)
    tok = load_tokenizer(cfg.model)
    ids = tok.chat_ids([{"role": "user", "content": cfg.prompt}])
    print(f"model {cfg.model}, prompt {len(ids)} tokens, n={list(cfg.ns)}, weights {list(cfg.weights)}, "
          f"anchors {list(cfg.anchors)}, max_new_tokens={cfg.max_new_tokens}, T={cfg.temperature}, "
          f"top_p={cfg.top_p}, seed={cfg.seed}, torch threads {torch.get_num_threads()}")
    skipped = {a: r for a in cfg.anchors if (r := skip_reason(a, cfg.model))}
    for anchor, reason in skipped.items():
        print(f"skipping anchor {anchor}: {reason}")

    rows: list[SpeedRow] = []
    prefill_lines, dtype = [], "float32"
    for fmt in cfg.weights:
        fmt_rows, line, fmt_dtype = _embedded_rows(cfg, fmt, ids)
        rows += fmt_rows
        prefill_lines.append(line)
        dtype = fmt_dtype if fmt == "full" else dtype
    dtype_md = _dtype_table(cfg, ids) if cfg.dtype_check else ""
    anchor_lines = []
    # in-process and llama.cpp first; vLLM last: its server is started after every other run
    for anchor in sorted((a for a in cfg.anchors if a not in skipped), key=lambda a: a == "vllm"):
        try:
            got, line = _anchor_rows(cfg, anchor, model_dir, ids, tok.eos_token_ids, dtype)
        except Exception as e:  # noqa: BLE001 - one broken anchor must not lose the others' figures
            got, line = [], f"{anchor}: failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            print(line)
        rows += got
        anchor_lines.append(line)
    for n in cfg.ns:
        best = best_embedded(rows, n)
        if best:
            print(f"n={n}: best embedded {best.engine} {best.tokens_per_s:.1f} tok/s")
    body = render_body(cfg, rows, len(ids), prefill_lines, anchor_lines, skipped, dtype_md,
                       (load_start, os.getloadavg()[0]))
    title = section_title()
    path = write_section(title, body, path=cfg.out_path, old_titles=OLD_TITLES if title == TITLE else ())
    print(f"wrote {path}")
    return path


def render_body(cfg: EngineBenchConfig, rows: list[SpeedRow], prompt_tokens: int, prefill_lines: list[str],
                anchor_lines: list[str], skipped: dict[str, str], dtype_md: str, load: tuple[float, float]) -> str:
    """The BENCHMARKS.md section: the speed and ratio tables, then how each row was measured."""
    skip_md = "".join(f"- skipped {a}: {r}\n" for a, r in skipped.items())
    return f"""
Model `{cfg.model}`, one GSM8K chat prompt ({prompt_tokens} tokens), n samples of up to {cfg.max_new_tokens} new
tokens, temperature {cfg.temperature}, top-p {cfg.top_p}, seed {cfg.seed} (embedded: row i has seed {cfg.seed}+i). One engine computes at a time. tok/s = tokens counted / wall seconds including prefill. Embedded and
vLLM count useful tokens (each row's tokens up to and including its EOS); **llama-batched-bench generates all
{cfg.max_new_tokens} tokens in every row (random ids, no EOS)**, so its rows keep the batch full to the end.

{render_speed_table(rows, cfg.ns)}

{render_detail(rows)}

{chr(10).join("- " + x for x in anchor_lines + prefill_lines)}
{skip_md}
{dtype_md}
Machine load average (1 min): {load[0]:.1f} at start, {load[1]:.1f} at end (a shared machine's other jobs
slow every row; the rows are sequential, so the ratios are noisy).
"""

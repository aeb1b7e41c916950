"""`parareason bench engines`: the embedded engine against a real vLLM server, one workload.

One GSM8K chat prompt, n samples of `max_new_tokens` at the same temperature, run
one after the other in one process (never two engines computing at once):

* embedded: the in-process engine, n sequences of the prompt (batched decode), its
  linear layers in `weights` (full, float16 or int8: `--weights`, as `bench engine`);
* vLLM n=N: one `/v1/completions` request with `n` (vLLM's own parallel sampling);
* parareason SC over vLLM: self-consistency through the vLLM backend (n streams of
  one request, same prefix, one affinity key);
* DeepConf online and FFS over vLLM: what adaptive policies save against vLLM n=N.

Useful tokens are the tokens each sample generated up to and including its EOS (a
server generates no others). Every row decodes the same context: the one parareason
sends for the question (the plain protocol's instructions and the question, chat
template applied). With `--url` the server stays up while the embedded engine runs (an
idle vLLM CPU server still takes cycles): leave it out for the fair figure, and the
bench starts its own server after the embedded run. Ratios are against vLLM n=N, measured in the same run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from parareason.bench.engine_bench import DEFAULT_PROMPT
from parareason.io.summary import markdown_table
from parareason.models import DEFAULT_MODEL


@dataclass
class EnginesRow:
    label: str
    tokens: int
    seconds: float
    note: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class EnginesBenchConfig:
    url: str | None = None  # a running vLLM server; None: start one (testing/vllm_server.py)
    model: str = DEFAULT_MODEL
    n: int = 16
    max_new_tokens: int = 128
    temperature: float = 0.7
    seed: int = 0
    weights: str = "full"  # the embedded engine's weight format (backends/embedded/weights.py)
    prompt: str = DEFAULT_PROMPT
    policies: tuple[str, ...] = ("deepconf", "ffs")
    policy_args: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "deepconf": {"mode": "online", "warmup": 4, "window": 64, "top_logprobs": 5}, "ffs": {"k": 1}})
    out_path: str | Path = "BENCHMARKS.md"


def _embedded(cfg: EnginesBenchConfig, ids: list[int]) -> EnginesRow:
    from parareason.backends.registry import load_backend
    from parareason.bench.engine_bench import _run_engine

    engine = load_backend("embedded", cfg.model, weights=cfg.weights)
    _run_engine(engine, ids, 2, cfg.temperature, 1.0, 4, cfg.seed)  # warm-up
    run = _run_engine(engine, ids, cfg.n, cfg.temperature, 1.0, cfg.max_new_tokens, cfg.seed)
    engine.close()
    label = "embedded engine" if cfg.weights == "full" else f"embedded engine, {cfg.weights} weights"
    return EnginesRow(label, run.useful_tokens, run.seconds,
                      f"dtype {engine.dtype_choice.dtype}, {engine.model.weights} weights")


def _vllm_native(cfg: EnginesBenchConfig, url: str, ids: list[int]) -> EnginesRow:
    import httpx

    body = {"model": cfg.model, "prompt": ids, "n": cfg.n, "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature, "seed": cfg.seed}
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/completions", json=body, timeout=3600)
    secs = time.perf_counter() - t0
    r.raise_for_status()
    return EnginesRow(f"vLLM n={cfg.n} (one request)", int(r.json()["usage"]["completion_tokens"]), secs)


def _over_vllm(cfg: EnginesBenchConfig, url: str, policy: str, args: dict[str, Any]) -> EnginesRow:
    import parareason

    with parareason.Engine(cfg.model, backend="vllm", urls=[url]) as engine:
        t0 = time.perf_counter()
        [res] = engine.run([{"id": "q", "prompt": cfg.prompt}], policy=policy, n=cfg.n, policy_args=args,
                           max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed)
        secs = time.perf_counter() - t0
    note = f"error: {res.error}" if res.error else f"cached prompt tokens {res.usage['cached_tokens']}"
    return EnginesRow(f"parareason {policy} over vLLM", int(res.usage["generated_tokens"]), secs, note)


def run_engines_bench(cfg: EnginesBenchConfig) -> list[EnginesRow]:
    from parareason.backends.embedded import load_tokenizer
    from parareason.bench.report import write_section

    from parareason.runtime.protocols import get_protocol

    # the exact context parareason sends (the plain protocol's instructions + the question),
    # so every row decodes the same prompt
    ids = load_tokenizer(cfg.model).chat_ids(get_protocol("plain").messages(cfg.prompt, None))
    rows = [_embedded(cfg, ids)]
    server = None
    url = cfg.url
    if url is None:
        from parareason.testing.vllm_server import start_server

        server = start_server(cfg.model)
        url = server.url
    try:
        _vllm_native(replace(cfg, n=2, max_new_tokens=4), url, ids)  # warm-up
        rows.append(_vllm_native(cfg, url, ids))
        rows.append(_over_vllm(cfg, url, "sc", {}))
        for policy in cfg.policies:
            rows.append(_over_vllm(cfg, url, policy, cfg.policy_args.get(policy, {})))
    finally:
        if server is not None:
            server.stop()
    write_section("Engines: embedded vs vLLM CPU (bench engines)", render(cfg, rows, len(ids)), cfg.out_path)
    return rows


def render(cfg: EnginesBenchConfig, rows: list[EnginesRow], prompt_tokens: int) -> str:
    base = rows[1]
    lines = [f"One GSM8K chat prompt ({prompt_tokens} tokens), n={cfg.n} samples of up to {cfg.max_new_tokens} "
             f"tokens, T={cfg.temperature}, seed {cfg.seed}; ratios against vLLM's own n={cfg.n} request, "
             "measured in this run, one engine computing at a time"
             + (" (but the --url server stayed up during the embedded run: unfair to it)." if cfg.url else
                " (the bench started vLLM after the embedded run)."), ""]
    cells = [[r.label, str(r.tokens), f"{r.seconds:.1f}", f"{r.tokens_per_s:.1f}",
              f"{r.tokens_per_s / base.tokens_per_s:.2f}x", f"{r.tokens / max(base.tokens, 1):.2f}",
              f"{r.seconds / base.seconds:.2f}", r.note] for r in rows]
    lines.append(markdown_table(["run", "useful tokens", "wall s", "tokens/s", "tokens/s vs vLLM n",
                                 "tokens vs vLLM n", "wall vs vLLM n", "note"], cells).rstrip("\n"))
    return "\n".join(lines)

"""`parareason bench serve`: K concurrent requests vs the same K one after another.

One model load, one `parareason serve` app on loopback (uvicorn in this process, real
HTTP through httpx). Each request is a GSM8K question run by the policy with n
samples; request i carries seed `seed + i` in both phases, so both phases ask for the
same samples. Phase 1 sends the K requests one at a time, phase 2 all at once; the
engine's prefix cache is cleared before each phase. Concurrent requests share the
engine loop, so their threads decode in one batch: the figure of merit is the wall
time ratio (sequential / concurrent).
"""
from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parareason.models import DEFAULT_MODEL
from parareason.backends.registry import DEFAULT_BACKEND

# GSM8K train rows 0-7 (github.com/openai/grade-school-math, MIT): question, answer.
QUESTIONS: list[tuple[str, str]] = [
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
     "How many clips did Natalia sell altogether in April and May?", "72"),
    ("Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
     "How much did she earn?", "10"),
    ("Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. "
     "Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her parents. "
     "How much more money does Betty need to buy the wallet?", "5"),
    ("Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today, she read twice as "
     "many pages as yesterday. If she wants to read half of the remaining pages tomorrow, how many pages should "
     "she read?", "42"),
    ("James writes a 3-page letter to 2 different friends twice a week.  How many pages does he write a year?",
     "624"),
    ("Mark has a garden with flowers. He planted plants of three different colors in it. Ten of them are yellow, "
     "and there are 80% more of those in purple. There are only 25% as many green flowers as there are yellow "
     "and purple flowers. How many flowers does Mark have in his garden?", "35"),
    ("Albert is wondering how much pizza he can eat in one day. He buys 2 large pizzas and 2 small pizzas. "
     "A large pizza has 16 slices and a small pizza has 8 slices. If he eats it all, how many pieces does he "
     "eat that day?", "48"),
    ("Ken created a care package to send to his brother, who was away at boarding school.  Ken placed a box on "
     "a scale, and then he poured into the box enough jelly beans to bring the weight to 2 pounds.  Then, he "
     "added enough brownies to cause the weight to triple.  Next, he added another 2 pounds of jelly beans.  "
     "And finally, he added enough gummy worms to double the weight once again.  What was the final weight of "
     "the box of goodies, in pounds?", "16"),
]


@dataclass
class Phase:
    label: str
    wall_s: float
    responses: list[dict[str, Any]]
    latencies: list[float]
    decode: tuple[int, int] | None = None  # (rows, forwards) of the embedded engine in this phase
    correct: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def completion_tokens(self) -> int:
        return sum(r["usage"]["completion_tokens"] for r in self.responses if "usage" in r)

    @property
    def mean_batch(self) -> str:
        if not self.decode or not self.decode[1]:
            return "n/a"
        return f"{self.decode[0] / self.decode[1]:.1f}"


def _post(http: Any, url: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    r = http.post(f"{url}/v1/chat/completions", json=body)
    secs = time.perf_counter() - t0
    data = r.json()
    if r.status_code != 200:
        data = {"error": data.get("error", data)}
    return data, secs


def _decode_counters(backend: Any) -> tuple[int, int] | None:
    stats = getattr(backend, "stats", None)
    if stats is None or not hasattr(stats, "decode_rows"):
        return None
    return stats.decode_rows, stats.decode_forwards


def _run_phase(label: str, url: str, backend: Any, bodies: list[dict[str, Any]], answers: list[str],
               concurrent: bool) -> Phase:
    import httpx

    from parareason.grading import is_correct

    cache = getattr(backend, "prefix_cache", None)
    if callable(getattr(cache, "clear", None)):
        cache.clear()  # neither phase starts with the other's prompts cached (embedded engine)
    before = _decode_counters(backend)
    with httpx.Client(timeout=None, limits=httpx.Limits(max_connections=len(bodies) + 2)) as http:
        t0 = time.perf_counter()
        if concurrent:
            with ThreadPoolExecutor(len(bodies)) as pool:
                outs = list(pool.map(lambda b: _post(http, url, b), bodies))
        else:
            outs = [_post(http, url, b) for b in bodies]
        wall = time.perf_counter() - t0
    after = _decode_counters(backend)
    phase = Phase(label, wall, [o for o, _ in outs], [s for _, s in outs])
    if before is not None and after is not None:
        phase.decode = (after[0] - before[0], after[1] - before[1])
    for resp, gold in zip(phase.responses, answers):
        if "error" in resp:
            phase.errors.append(str(resp["error"]))
        elif is_correct(resp["parareason"]["answer"], gold):
            phase.correct += 1
    return phase


@dataclass
class ServeBenchConfig:
    model: str = DEFAULT_MODEL
    backend: str = DEFAULT_BACKEND
    urls: tuple[str, ...] = ()  # SGLang server URL(s) with backend "sglang"
    num_requests: int = 8  # requests per phase (GSM8K train rows 0..K-1)
    policy: str = "sc"
    n: int = 2  # samples per request
    max_new_tokens: int = 64
    temperature: float = 0.7
    seed: int = 0
    out_path: str | Path = "BENCHMARKS.md"


def run_serve_bench(cfg: ServeBenchConfig) -> Path:
    """K concurrent requests vs the same K one at a time, through the HTTP server."""
    model, backend, urls, num_requests, policy = cfg.model, cfg.backend, cfg.urls, cfg.num_requests, cfg.policy
    n, max_new_tokens, temperature, seed, out_path = cfg.n, cfg.max_new_tokens, cfg.temperature, cfg.seed, cfg.out_path
    if not 1 <= num_requests <= len(QUESTIONS):
        raise ValueError(f"num_requests must be 1..{len(QUESTIONS)}, got {num_requests}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from parareason.backends.registry import load_backend
    from parareason.bench.report import write_section
    from parareason.server import ServeDefaults, create_app
    from parareason.server.background import serve_in_background

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    be = load_backend(backend, model, urls)
    print(f"loaded {backend} backend ({model}) in {time.perf_counter() - t0:.1f}s")
    defaults = ServeDefaults(model_id=model, policy=policy, n=n, max_n=max(64, n), max_new_tokens=max_new_tokens,
                             temperature=temperature, deadline_s=3600.0)
    app = create_app(be, defaults, max_in_flight=num_requests + 2, close_backend=True)
    questions = QUESTIONS[:num_requests]
    bodies = [{"model": model, "seed": seed + i, "messages": [{"role": "user", "content": q}]}
              for i, (q, _) in enumerate(questions)]
    answers = [a for _, a in questions]
    with serve_in_background(app) as url:
        warm = {"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
        _run_phase("warm-up", url, be, [warm], ["-"], concurrent=False)
        seq = _run_phase("one at a time", url, be, bodies, answers, concurrent=False)
        print(f"one at a time: {seq.wall_s:.1f}s, {seq.completion_tokens} tokens, errors {len(seq.errors)}")
        con = _run_phase(f"{num_requests} concurrent", url, be, bodies, answers, concurrent=True)
        print(f"{num_requests} concurrent: {con.wall_s:.1f}s, {con.completion_tokens} tokens, "
              f"errors {len(con.errors)}")
    ratio = seq.wall_s / con.wall_s if con.wall_s > 0 else float("nan")
    load_after = os.getloadavg()
    print(f"speed-up (sequential wall / concurrent wall): {ratio:.2f}x (target >= 2)")
    for p in (seq, con):
        for e in p.errors:
            print(f"  {p.label} error: {e}", file=sys.stderr)

    rows = "\n".join(
        f"| {p.label} | {p.wall_s:.1f} | {p.completion_tokens} | {p.completion_tokens / p.wall_s:.1f} | "
        f"{sum(p.latencies) / len(p.latencies):.1f} | {max(p.latencies):.1f} | {p.mean_batch} | "
        f"{p.correct}/{len(p.responses)} | {len(p.errors)} |" for p in (seq, con))
    body = f"""
`{model}` ({backend} backend) behind `parareason serve` on loopback (uvicorn in-process, httpx clients).
{num_requests} chat requests = GSM8K train rows 0-{num_requests - 1}; policy `{policy}`, n={n} samples per
request, max_tokens {max_new_tokens} per sample, temperature {temperature}, request i seed {seed}+i in both phases.
Prefix cache cleared before each phase; one warm-up request first. Completion tokens = all threads' tokens.

| mode | wall s | completion tokens | tok/s | mean latency s | max latency s | mean decode batch | correct | errors |
|---|---|---|---|---|---|---|---|---|
{rows}

- speed-up, sequential wall / concurrent wall: **{ratio:.2f}x** (target >= 2x): concurrent requests share the
  engine loop, so their threads decode in one batch.
- machine load average (1/5/15 min) before: {" / ".join(f"{x:.1f}" for x in load_before)}, after:
  {" / ".join(f"{x:.1f}" for x in load_after)} (other processes share the CPU; compare runs at similar load).
"""
    path = write_section("Server: concurrent requests vs one at a time", body, path=out_path)
    print(f"wrote {path}")
    return path

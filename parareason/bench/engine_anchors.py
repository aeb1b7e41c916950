"""The anchors of `bench engine` (llama.cpp, vLLM CPU) and the table that sets them side by side.

Every measurement is a `SpeedRow`: an engine, a number of samples n, the tokens counted
and the seconds they took. The embedded engine's and vLLM's tokens are useful tokens
(each row's up to its EOS); llama-batched-bench generates all max_new_tokens per row.

An anchor that is not installed is skipped with a line naming the command that installs
it (`skip_reason`). vLLM runs last, as the bench's own server (testing/vllm_server.py:
float32, prefix caching, the flags that kept n=64 in one request alive), started after
every in-process run so that an idle server never shares the CPU with them; an n it
does not survive becomes a row with the error instead of ending the bench.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from parareason.io.summary import markdown_table

ANCHORS = ("llama.cpp", "vllm", "generate")
DEFAULT_ANCHORS = ("llama.cpp", "vllm")


@dataclass(frozen=True)
class SpeedRow:
    engine: str  # "embedded int8", "llama.cpp Q4 GGUF", "vLLM CPU 0.32.0", ...
    n: int
    tokens: int
    seconds: float
    note: str = ""
    embedded: bool = False  # one of the engine's own weight formats
    failed: bool = False  # no figure: `note` says why

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 and not self.failed else 0.0


def parse_anchors(spec: str) -> tuple[str, ...]:
    names = tuple(a.strip().lower() for a in spec.split(",") if a.strip())
    unknown = [a for a in names if a not in ANCHORS]
    if unknown:
        raise ValueError(f"unknown anchors {unknown}; known: {', '.join(ANCHORS)}")
    return names


def skip_reason(anchor: str, model: str) -> str | None:
    """Why `anchor` cannot run here (with how to install it), or None when it can."""
    if anchor == "llama.cpp":
        from parareason.models import SHIPPED
        from parareason.testing import llama_cpp

        if not llama_cpp.is_built():
            return f"llama.cpp ({llama_cpp.build_name()} build) is not installed; install: {llama_cpp.install_hint()}"
        if model not in SHIPPED and not model.endswith(".gguf"):
            return f"llama.cpp needs a GGUF: {model!r} is neither a shipped alias nor a .gguf file"
    elif anchor == "vllm":
        from parareason.testing import vllm_server

        if not vllm_server.is_built():
            return ("vLLM CPU is not installed; install: python -m parareason.testing.vllm_server build "
                    "(its own venv, ~10 min, 3.4 GB)")
    return None


def llama_cpp_rows(model: str, prompt_tokens: int, new_tokens: int, ns: Sequence[int],
                   threads: int) -> tuple[list[SpeedRow], str]:
    """llama-batched-bench rows (one per n) and a line describing the run."""
    from parareason.bench.llama_cpp_anchor import run_batched_bench
    from parareason.testing.llama_cpp import BUILDS, build_name

    res = run_batched_bench(model, prompt_tokens, new_tokens, ns, threads)
    by_b = {r.b: r for r in res.rows}
    label = f"llama.cpp ({res.file_type})"
    rows = []
    for n in ns:
        r = by_b.get(n)
        if r is None:
            rows.append(SpeedRow(label, n, 0, 0.0, f"no row for B={n} (context {res.n_kv_max})", failed=True))
        else:
            rows.append(SpeedRow(label, n, r.generated, r.t, f"prefill {r.s_pp:.0f} tok/s, decode {r.s_tg:.1f} tok/s"))
    cmd = " ".join([Path(res.command[0]).name, "-m", Path(res.command[2]).name, *res.command[3:]])
    build = build_name()
    flags = f": {BUILDS[build]}" if BUILDS[build] else ""
    return rows, f"llama.cpp: `{cmd}` ({res.threads} threads; {build} build{flags})"


def _vllm_request(url: str, model: str, ids: list[int], n: int, max_new_tokens: int, temperature: float,
                  top_p: float, seed: int) -> tuple[int, float]:
    import httpx

    body = {"model": model, "prompt": ids, "n": n, "max_tokens": max_new_tokens, "temperature": temperature,
            "top_p": top_p, "seed": seed}
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/completions", json=body, timeout=3600)
    secs = time.perf_counter() - t0
    r.raise_for_status()
    return int(r.json()["usage"]["completion_tokens"]), secs


def requests_note(seeds: Sequence[int]) -> str:
    """What a row timed as several requests in turn says about it ('' for one request)."""
    return f"{len(seeds)} requests in turn, seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else ""


def vllm_rows(model: str, ids: list[int], ns: Sequence[int], max_new_tokens: int, temperature: float,
              top_p: float, seed: int, log: Callable[[str], None] = print,
              seeds_for: Callable[[int], list[int]] | None = None) -> tuple[list[SpeedRow], str]:
    """Start the bench's own vLLM CPU server, time the `n`-sample requests of each n (one
    per seed of `seeds_for(n)`, in turn; default one), stop it."""
    from parareason.testing.vllm_server import VLLM_VERSION, start_server

    label = f"vLLM CPU {VLLM_VERSION} (float32)"
    t0 = time.perf_counter()
    server = start_server(model)
    started = time.perf_counter() - t0
    log(f"vLLM server up in {started:.0f}s ({server.url}, log {server.log_path})")
    rows = []
    try:
        _vllm_request(server.url, model, ids, 2, 4, temperature, top_p, seed)  # warm-up
        for n in ns:
            try:
                seeds = seeds_for(n) if seeds_for else [seed]
                runs = [_vllm_request(server.url, model, ids, n, max_new_tokens, temperature, top_p, s) for s in seeds]
                rows.append(SpeedRow(label, n, sum(t for t, _ in runs), sum(x for _, x in runs), requests_note(seeds)))
            except Exception as e:  # noqa: BLE001 - the server may die at large n; the row says so
                alive = server.healthy()
                rows.append(SpeedRow(label, n, 0, 0.0, f"failed ({type(e).__name__}; server "
                                                        f"{'up' if alive else 'down'}, log {server.log_path})",
                                     failed=True))
                if not alive:
                    break
            log(f"vLLM n={n}: {rows[-1].tokens} tokens in {rows[-1].seconds:.1f}s")
    finally:
        server.stop()
    return rows, (f"vLLM: the bench's own server (testing/vllm_server.py: float32, prefix caching, 2 cores), "
                  f"started after every other run ({started:.0f} s to start); one /v1/completions request with n")


def _fmt(x: float) -> str:
    return f"{x:.1f}" if x else "—"


def best_embedded(rows: Sequence[SpeedRow], n: int) -> SpeedRow | None:
    cands = [r for r in rows if r.embedded and r.n == n and not r.failed]
    return max(cands, key=lambda r: r.tokens_per_s) if cands else None


def render_speed_table(rows: Sequence[SpeedRow], ns: Sequence[int]) -> str:
    """tok/s of every engine at every n, and the best embedded format's ratio to each anchor."""
    engines = list(dict.fromkeys(r.engine for r in rows))
    anchors = list(dict.fromkeys(r.engine for r in rows if not r.embedded))
    at = {(r.engine, r.n): r for r in rows}
    speed = markdown_table(["engine"] + [f"n={n} tok/s" for n in ns],
                           [[e] + [_fmt(at[(e, n)].tokens_per_s) if (e, n) in at else "—" for n in ns]
                            for e in engines])
    if not anchors:
        return speed.rstrip("\n")
    ratios = []
    for n in ns:
        best = best_embedded(rows, n)
        if best is None:
            continue
        cells = []
        for a in anchors:
            ref = at.get((a, n))
            ok = ref is not None and ref.tokens_per_s > 0
            cells.append(f"**{best.tokens_per_s / ref.tokens_per_s:.2f}x**" if ok else "—")
        ratios.append([str(n), best.engine, f"{best.tokens_per_s:.1f}", *cells])
    return speed + "\n" + markdown_table(["n", "best embedded", "tok/s"] + [f"vs {a}" for a in anchors],
                                          ratios).rstrip("\n")


def render_detail(rows: Sequence[SpeedRow]) -> str:
    return markdown_table(["engine", "n", "tokens", "seconds", "tok/s", "note"],
                          [[r.engine, str(r.n), str(r.tokens), f"{r.seconds:.1f}", _fmt(r.tokens_per_s), r.note]
                           for r in rows]).rstrip("\n")

"""What the SGLang server does that changes results, read once at start-up.

SGLang 0.5.23 (paths under `sglang/srt/`):
* logprobs: `layers/sampler.py` returns log_softmax(logits / T) for sampled
  (non-greedy) batches unless the server runs with SGLANG_RETURN_ORIGINAL_LOGPROB=1.
  Found by a probe: one 1-token request with top logprobs at T=1 and at T=0.5
  for the same prompt; the alternatives at a position do not depend on the
  token drawn, so different numbers mean scaled logprobs. Every returned
  alternative is compared, by token id: for a confident first token both runs
  give ~0 to the top-1 whether scaled or not, and only the lower ranks differ.
  Not convertible back exactly (that needs the whole distribution), so it is
  reported, not fixed.
* seeds: `sampling/sampling_batch_info.py` uses `sampling_seed` only with
  `--enable-deterministic-inference` (`/server_info`'s
  `enable_deterministic_inference`; `/get_server_info` on older versions).
* context length: `managers/tokenizer_manager.py:1338, 1358` refuses input >=
  context length and input + max_new_tokens > context length (`/server_info`'s
  `context_length`); the scheduler aborts input >= `max_req_input_len`
  (`/server_info` carries it: `utils/common.py:3591` merges the scheduler's
  `get_init_info`, `managers/scheduler.py:1946`), 6 below the context length at
  most (`managers/tp_worker.py:568-572`). `request_body.py` applies both.
* data parallelism: `dp_size` > 1 behind one URL without a router.
* router: sglang-router (model gateway) lists its workers on `GET /workers`
  (`{"workers": [{"url", "is_healthy", ...}]}`); older, actix-web routers only on
  `GET /list_workers` (`{"urls": [...]}`, no health), a route newer ones keep as
  "legacy" (`sgl-router/src/server.rs` in the SGLang repository).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

LOGPROBS_ORIGINAL = "original"
LOGPROBS_SCALED = "temperature-scaled"
UNKNOWN = "unknown"


@dataclass
class ServerFacts:
    version: str | None = None
    context_length: int | None = None
    max_req_input_len: int | None = None  # the scheduler's input limit (None: context_length - 6)
    allow_auto_truncate: bool = False
    seeds_honoured: bool | None = None  # None: the server did not say
    logprobs: str = UNKNOWN  # LOGPROBS_ORIGINAL | LOGPROBS_SCALED | UNKNOWN
    dp_size: int = 1
    router_workers: list[str] = field(default_factory=list)  # when the URL is an sglang-router

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts for a run's settings and results."""
        return {"logprobs": self.logprobs, "seeded_reruns_repeat": bool(self.seeds_honoured),
                "context_length": self.context_length, "max_req_input_len": self.max_req_input_len,
                "server_version": self.version}

    def read_server_info(self, info: dict[str, Any]) -> None:
        self.version = info.get("version") or self.version
        ctx = info.get("context_length")
        limit = info.get("max_req_input_len")
        self.max_req_input_len = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        if ctx is None and self.max_req_input_len is not None:
            ctx = self.max_req_input_len + 6  # tp_worker.py:568-572: max_req_input_len = context_len - 1 - 5
        self.context_length = int(ctx) if ctx else None
        self.allow_auto_truncate = bool(info.get("allow_auto_truncate"))
        if "enable_deterministic_inference" in info:
            self.seeds_honoured = bool(info["enable_deterministic_inference"])
        self.dp_size = int(info.get("dp_size") or 1)


async def server_info(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """`/server_info` (`/get_server_info` before it was renamed); {} when neither answers."""
    for path in ("/server_info", "/get_server_info"):
        try:
            r = await client.get(f"{url}{path}")
        except httpx.HTTPError:
            return {}
        if r.status_code == 200 and isinstance(r.json(), dict):
            return r.json()
    return {}


async def router_workers(client: httpx.AsyncClient, url: str) -> list[tuple[str, bool]] | None:
    """(worker URL, healthy) from an sglang-router's `GET /workers` (older routers:
    `GET /list_workers`, which says nothing of health); None if `url` is no router."""
    listed = await _get_json(client, f"{url}/workers", "workers")
    if listed is None:
        urls = await _get_json(client, f"{url}/list_workers", "urls")
        listed = None if urls is None else [{"url": u} for u in urls if isinstance(u, str)]
    if listed is None:
        return None
    return [(_reachable(str(w.get("url")), url), bool(w.get("is_healthy", True)))
            for w in listed if isinstance(w, dict) and w.get("url")]


async def _get_json(client: httpx.AsyncClient, url: str, key: str) -> list | None:
    """The list under `key` of a 200 JSON answer, else None."""
    try:
        r = await client.get(url)
        listed = r.json().get(key) if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return listed if isinstance(listed, list) else None


def _reachable(worker: str, router: str) -> str:
    """Workers co-launched with the router report 0.0.0.0 or 127.0.0.1: use the router's host."""
    w, r = urlsplit(worker), urlsplit(router)
    if w.hostname in ("0.0.0.0", "127.0.0.1", "localhost") and r.hostname not in (None, w.hostname):
        return f"{w.scheme or 'http'}://{r.hostname}:{w.port}" if w.port else worker
    return worker.rstrip("/")


def probe_body(input_ids: list[int], temperature: float) -> dict[str, Any]:
    """One non-streamed 1-token request with the top-5 alternatives' logprobs."""
    return {"input_ids": list(input_ids), "return_logprob": True, "top_logprobs_num": 5, "logprob_start_len": -1,
            "sampling_params": {"max_new_tokens": 1, "temperature": temperature, "top_p": 1.0, "top_k": -1,
                                "min_p": 0.0, "repetition_penalty": 1.0, "frequency_penalty": 0.0,
                                "presence_penalty": 0.0}}


# Run-to-run noise (bf16 kernels, batch composition) stays well inside this; at T=0.5 a
# logprob of -5 becomes about -10, so scaling is far outside it.
PROBE_ABS_TOL, PROBE_REL_TOL = 1e-3, 0.1


def _differ(a: float, b: float) -> bool:
    return abs(a - b) > PROBE_ABS_TOL + PROBE_REL_TOL * max(abs(a), abs(b))


async def probe_logprobs(client: httpx.AsyncClient, url: str, input_ids: list[int]) -> str:
    """LOGPROBS_SCALED if any top alternative's logprob changes with the temperature."""
    runs: list[dict[int, float]] = []
    for temperature in (1.0, 0.5):
        try:
            r = await client.post(f"{url}/generate", json=probe_body(input_ids, temperature))
            top = r.json()["meta_info"]["output_top_logprobs"][0]
            runs.append({int(t[1]): float(t[0]) for t in top if t is not None and t[0] is not None})
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
            log.warning("SGLang logprob probe at %s failed (%s); logprob scaling unknown", url, e)
            return UNKNOWN
    shared = runs[0].keys() & runs[1].keys()  # the same ids, in the same order: T keeps the ranking
    if not shared:
        log.warning("SGLang logprob probe at %s returned no alternatives; logprob scaling unknown", url)
        return UNKNOWN
    differs = any(_differ(runs[0][t], runs[1][t]) for t in shared)
    return LOGPROBS_SCALED if differs else LOGPROBS_ORIGINAL

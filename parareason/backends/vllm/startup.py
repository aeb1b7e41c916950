"""Start-up checks of a vLLM server, before any sequence is sent.

* `/health` answers 200 (polled for `wait_ready_s` while a server starts);
* `/v1/models`: the served model name and its `max_model_len`, which caps every
  request's `max_tokens` so a thread reaches `length` instead of a rejected request;
* `/tokenize` on probe texts gives the local tokenizer's ids (a different tokenizer would
  make every token-id prompt wrong);
* `/metrics`' `vllm:cache_config_info` says whether prefix caching is on and its block
  size: vLLM caches whole KV blocks only, so siblings share `block_size * floor(prompt /
  block_size)` tokens of their prompt (vLLM CPU uses 128-token blocks: a prompt shorter
  than 128 tokens is never served from the cache);
* `POST /inference/v1/abort_requests` with no ids: 200 where the server was started with
  `--enable-scale-out` (403 without it, 404 before vLLM had the route); the client then
  aborts by request id, not only by hanging up (client.py says why).
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from parareason.backends.base import BackendError, Tokenizer
from parareason.backends.vllm.config import VLLMConfig

TOKENIZER_PROBES = ("Hello world! The answer is \\boxed{42}.", " 12345 + 678 = 13023\n\nStep 2:",
                    "Ünïcödé — 数学, ∑ x_i")
ABORT_ROUTE = "/inference/v1/abort_requests"  # external request ids; guarded by --api-key
MAX_LOGPROBS = 20  # vLLM's default --max-logprobs; /v1/models does not report it


@dataclass(frozen=True)
class ServerInfo:
    url: str
    model: str
    max_model_len: int
    prefix_caching: bool | None  # None: /metrics did not say
    block_size: int | None = None  # the prefix cache's unit (tokens)
    max_logprobs: int = MAX_LOGPROBS
    abort_route: bool = False  # /inference/v1/abort_requests answers (--enable-scale-out)


async def wait_healthy(client: httpx.AsyncClient, url: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            r = await client.get(url + "/health")
            if r.status_code == 200:
                return
            problem = f"/health answered {r.status_code}"
        except httpx.HTTPError as e:
            problem = f"cannot connect ({type(e).__name__}: {e})"
        if time.monotonic() >= deadline:
            raise BackendError(f"vLLM server {url} is not usable: {problem}")
        await asyncio.sleep(1.0)


async def served_model(client: httpx.AsyncClient, url: str, wanted: str | None) -> tuple[str, int]:
    r = await client.get(url + "/v1/models")
    if r.status_code == 401:  # serve/middleware/authenticate.py guards /v1, /v2, /inference
        raise BackendError(f"{url}/v1/models answered 401 ({r.text[:100]}): the server was started with "
                           "--api-key; pass the same key (api_key=..., HTTPClientConfig.api_key)")
    if r.status_code != 200:
        raise BackendError(f"{url}/v1/models answered {r.status_code}: {r.text[:200]}")
    models = r.json().get("data") or []
    if not models:
        raise BackendError(f"{url} serves no model")
    pick = next((m for m in models if m.get("id") == wanted), None) if wanted else models[0]
    if pick is None:
        raise BackendError(f"{url} does not serve {wanted!r}; it serves "
                           f"{', '.join(str(m.get('id')) for m in models)}")
    return str(pick["id"]), int(pick.get("max_model_len") or 0)


async def check_tokenizer(client: httpx.AsyncClient, url: str, model: str, tokenizer: Tokenizer) -> None:
    for text in TOKENIZER_PROBES:
        r = await client.post(url + "/tokenize", json={"model": model, "prompt": text,
                                                      "add_special_tokens": False})
        if r.status_code != 200:
            raise BackendError(f"{url}/tokenize answered {r.status_code}: {r.text[:200]}")
        theirs, ours = r.json().get("tokens"), tokenizer.encode(text)
        if theirs != ours:
            raise BackendError(f"the vLLM server at {url} tokenizes {text!r} as {theirs}, the local "
                               f"tokenizer ({tokenizer.name}) as {ours}: serve the same model, or pass "
                               "the matching --model")


def cache_config(text: str) -> dict[str, str]:
    """The labels of `vllm:cache_config_info` in a /metrics page ({} when absent)."""
    m = re.search(r"^vllm:cache_config_info\{([^}]*)\}", text, re.M)
    return dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))) if m else {}


def prefix_caching_from_metrics(text: str) -> bool | None:
    value = cache_config(text).get("enable_prefix_caching")
    return None if value is None else value.lower() == "true"


async def metric(client: httpx.AsyncClient, url: str, name: str) -> float | None:
    """The sum of one Prometheus metric's samples on the server (e.g. vllm:num_requests_running)."""
    r = await client.get(url + "/metrics")
    if r.status_code != 200:
        return None
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", r.text, re.M)]
    return sum(values) if values else None


async def check_server(client: httpx.AsyncClient, url: str, tokenizer: Tokenizer, config: VLLMConfig) -> ServerInfo:
    await wait_healthy(client, url, config.wait_ready_s)
    model, max_len = await served_model(client, url, config.model)
    if config.check_tokenizer:
        await check_tokenizer(client, url, model, tokenizer)
    caching: bool | None = None
    block: int | None = None
    r = await client.get(url + "/metrics")
    if r.status_code == 200:
        caching = prefix_caching_from_metrics(r.text)
        size = cache_config(r.text).get("block_size", "")
        block = int(size) if size.isdigit() else None
    try:
        probe = (await client.post(url + ABORT_ROUTE, json={"request_ids": []})).status_code  # aborts nothing
    except httpx.HTTPError:
        probe = None
    return ServerInfo(url=url, model=model, max_model_len=max_len, prefix_caching=caching, block_size=block,
                      abort_route=probe == 200)


def describe(infos: list[ServerInfo]) -> dict[str, Any]:
    """What the start-up checks found, for a run's settings."""
    return {"servers": [i.url for i in infos], "model": infos[0].model,
            "max_model_len": min(i.max_model_len for i in infos),
            "prefix_caching": [i.prefix_caching for i in infos], "cache_block_size": infos[0].block_size,
            "logprobs": "raw (temperature 1)",
            "abort": ["by request id" if i.abort_route else "by hang-up only (no --enable-scale-out)" for i in infos]}

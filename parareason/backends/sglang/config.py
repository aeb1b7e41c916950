"""`SGLangConfig`: every option of the SGLang client, and URL normalisation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import httpx

from parareason.backends.base import BackendError
from parareason.backends.http.config import HTTPClientConfig

# Strings whose token ids must be identical on both sides: words, digits, LaTeX,
# newlines and non-ASCII, where tokenizers of different families disagree.
DEFAULT_TOKENIZER_PROBES = (
    "Hello world! The answer is \\boxed{42}.",
    " 12345 + 678 = 13023\n\nStep 2:",
    "Ünïcödé — 数学, ∑ x_i",
)


@dataclass
class SGLangConfig(HTTPClientConfig):
    """SGLang's own options; timeouts, retries and the rest are HTTPClientConfig's."""

    stream_mode: str = "auto"  # "auto" | "cumulative" | "incremental" (server's streaming flag)
    tokenizer_probes: tuple[str, ...] = DEFAULT_TOKENIZER_PROBES
    health_timeout_s: float = 30.0  # SGLang's /health runs a 1-token generation
    admin_api_key: str | None = None  # a server with --admin-api-key wants it on /abort_request
    # The server refuses input + max_new_tokens beyond its context length; None reads it (and
    # the scheduler's max_req_input_len) from /server_info at start-up, and max_new_tokens is
    # capped to what fits. Set, it replaces both (input limit: context_length - 6).
    context_length: int | None = None
    probe_logprobs: bool = True  # at start-up: are logprobs temperature-scaled? (2 tiny requests)
    # Plain `launch_server --dp-size N` has no prefix affinity: send routed_dp_rank (hash of
    # the affinity key) so one request's threads share a rank's radix cache.
    dp_rank_affinity: bool = True
    # SamplingParams.seed goes out as sampling_params.sampling_seed, which only recent
    # SGLang builds know; older ones fail such requests. False: never send it.
    send_seed: bool = True
    # Behind sglang-router, /abort_request is not proxied: list the worker URLs here
    # to fan aborts out to them (unknown rids are a no-op on a worker). Closing the
    # stream also aborts, ~2 s later.
    abort_urls: tuple[str, ...] = ()
    abort_drain_s: float = 3.0  # after an abort, read the stream's final chunk this long


def normalize_urls(url_or_urls: str | Sequence[str]) -> list[str]:
    """'a,b' or ['a', 'b'] -> ['http://a', 'http://b'] without trailing slashes."""
    raw = url_or_urls.split(",") if isinstance(url_or_urls, str) else list(url_or_urls)
    urls = []
    for u in raw:
        u = u.strip().rstrip("/")
        if not u:
            continue
        urls.append(u if "://" in u else f"http://{u}")
    if not urls:
        raise BackendError("no SGLang URL given")
    return list(dict.fromkeys(urls))


def http_timeout(config: SGLangConfig, read_s: float | None) -> httpx.Timeout:
    """httpx timeouts for one call: the config's connect limit, `read_s` between bytes."""
    c = config.connect_timeout_s
    return httpx.Timeout(connect=c, read=read_s, write=c + 10, pool=max(c, 30.0))

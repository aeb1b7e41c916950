"""Settings of the vLLM client (`load_backend("vllm", urls=[...], **fields)`)."""
from __future__ import annotations

from dataclasses import dataclass

from parareason.backends.http.config import HTTPClientConfig


@dataclass
class VLLMConfig(HTTPClientConfig):
    """vLLM's own options; timeouts, retries, api_key and the rest are HTTPClientConfig's.
    After the first token, a stream silent for `stall_timeout_s` has failed."""

    model: str | None = None  # served model name; None: the first one /v1/models lists

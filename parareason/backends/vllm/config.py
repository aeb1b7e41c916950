"""Settings of the vLLM client (`load_backend("vllm", urls=[...], **fields)`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VLLMConfig:
    connect_timeout_s: float = 5.0
    # A request may wait in vLLM's queue with no byte sent: the first token gets its own,
    # much longer deadline; after it, a stream silent this long has failed.
    first_token_timeout_s: float = 600.0
    stall_timeout_s: float = 60.0
    request_timeout_s: float = 3600.0  # hard deadline per sequence, retries included
    max_retries: int = 3  # resends, only while no token of the sequence was delivered
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    check_tokenizer: bool = True
    wait_ready_s: float = 0.0  # keep polling /health this long while a server starts
    api_key: str | None = None  # sent as a Bearer token (vLLM's --api-key)
    model: str | None = None  # served model name; None: the first one /v1/models lists
    dead_cooldown_s: float = 5.0  # skip a server this long after it refused a connection
    max_connections: int = 512

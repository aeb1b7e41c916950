"""The settings every HTTP backend client shares (SGLang's and vLLM's configs extend it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HTTPClientConfig:
    connect_timeout_s: float = 5.0
    # A request waits in the server's queue without a byte: its first token gets this long
    # (then it is resent, up to max_retries) ...
    first_token_timeout_s: float = 1800.0
    # ... and after it, a stream silent this long has stalled (what the client then does
    # is the backend's own: SGLang asks /health, vLLM fails the stream). Minutes, not
    # seconds: on a CPU server another request's long prefill holds a running stream
    # silent. A live vLLM test's short stream ended in "error" beside a 4,090-token prefill
    # on a busy machine (most likely this timeout at 60 s; the error text was not kept) and
    # passed on a quiet one. A dead server shows sooner, by a closed connection.
    stall_timeout_s: float = 300.0
    request_timeout_s: float = 3600.0  # hard deadline per sequence, retries included
    max_retries: int = 3  # resends, only while no token of the sequence was delivered
    backoff_base_s: float = 0.25
    backoff_max_s: float = 4.0
    check_tokenizer: bool = True  # the server's token ids must equal the local tokenizer's
    wait_ready_s: float = 0.0  # keep polling /health this long while servers start up
    api_key: str | None = None  # sent as a Bearer token
    dead_cooldown_s: float = 5.0  # skip a server this long after it refused a connection
    max_connections: int = 512

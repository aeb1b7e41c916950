"""One failed attempt of one streamed request, and whether it is safe to retry.

Shared by the HTTP backends: a failure never raises out of `Backend.step()`; it becomes
a `RequestFailure` inside the client, which either retries (only while no token of the
sequence was delivered) or finishes the sequence with finish_reason "error".
"""
from __future__ import annotations

from dataclasses import dataclass

# HTTP statuses worth retrying: the server (or router) is overloaded, restarting,
# or hit an internal error before producing anything.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class RequestFailure(Exception):
    """One attempt of one /generate request failed.

    kind: "connect" (nothing reached the worker), "status" (non-200 answer),
    "dropped" (stream ended without [DONE]), "stall" (no bytes for stall_timeout_s),
    "deadline" (request deadline passed), "server" (error chunk in the stream),
    "protocol" (unparsable chunk).
    """

    kind: str
    message: str
    status: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def worker_down(self) -> bool:
        """The worker itself looks unreachable, so its affinity keys should fail over."""
        return self.kind == "connect" or (self.kind == "status" and self.status in (502, 503))

    @property
    def retryable(self) -> bool:
        """Safe to resend *if no token of the sequence was delivered yet*."""
        if self.kind in ("connect", "dropped", "stall"):
            return True
        return self.kind == "status" and self.status in RETRYABLE_STATUS

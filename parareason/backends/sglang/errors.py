"""Errors of the SGLang client. Per-request failures and their retry rule are
`backends/http/failures.py` (shared with vLLM), re-exported here; `BackendError` (from
base.py) is kept for backend-wide faults: no worker reachable at start-up, tokenizer
mismatch."""
from __future__ import annotations

from parareason.backends.base import BackendError
from parareason.backends.http.failures import RETRYABLE_STATUS, RequestFailure


class TokenizerMismatch(BackendError):
    """The server's tokenizer does not produce the runtime's token ids."""


__all__ = ["BackendError", "RequestFailure", "TokenizerMismatch", "RETRYABLE_STATUS"]

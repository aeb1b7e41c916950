"""Faults the SGLang stand-in can inject, changeable while it runs."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StandinFaults:
    """Faults to inject; change the fields at any time from the test."""

    error_500_next: int = 0  # answer HTTP 500 to the next N /generate requests
    drop_after_tokens: int | None = None  # hang up once this many tokens were streamed
    drop_next: int | None = None  # ... for the next N requests only (None: every request)
    stall_after_tokens: int | None = None  # then send nothing more (0: not even a first chunk)
    stall_next: int | None = None  # ... for the next N requests only (None: every request)
    health_status: int = 200
    nan_after_tokens: int | None = None  # end with SGLang's {"type": "stop", "matched": "NaN happened"}

    def take(self, name: str) -> bool:
        """Consume one use of a counted fault; True if it applies to this request."""
        left = getattr(self, name)
        if left is None:
            return True
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True

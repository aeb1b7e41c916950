"""Runtime limits: hard caps the scheduler enforces for every request.

Limits belong to the runtime, not to policies: a buggy policy or a model that spawns
at every step can never exceed them. Hitting one ends the offending thread with status
`limit` and reason `limit:<name>` (the field name below); the request itself goes on.
"""
from __future__ import annotations

from dataclasses import dataclass

def limit_reason(name: str) -> str:
    """The reason string of a thread ended by limit `name` (a field of `Limits`)."""
    return f"limit:{name}"


@dataclass(frozen=True)
class Limits:
    """None means unlimited. Token counts are generated (model) tokens."""

    max_live_threads: int | None = 64  # threads not yet ended, per request
    max_spawn_depth: int | None = 3  # nesting of spawned / forked threads (root = 0)
    max_children_per_spawn: int | None = 8  # children one spawn / parallel block may create
    tokens_per_thread: int | None = 4096
    tokens_per_request: int | None = None
    deadline_s: float | None = None  # wall clock from the moment the request is added

    def __post_init__(self) -> None:
        for name in ("max_live_threads", "max_spawn_depth", "max_children_per_spawn",
                     "tokens_per_thread", "tokens_per_request"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"Limits.{name} must be >= 0 or None, got {v}")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError("Limits.deadline_s must be > 0 or None")

    @classmethod
    def for_request(cls, *, max_new_tokens: int, budget: int | None = None,
                    deadline_s: float | None = None) -> "Limits":
        """The default limits of one request, widened so a thread may run its full
        `max_new_tokens` (the per-thread default is only a floor)."""
        return cls(tokens_per_request=budget, deadline_s=deadline_s,
                   tokens_per_thread=max(cls().tokens_per_thread or 0, max_new_tokens))

"""Runtime limits: hard caps the scheduler enforces for every request.

Limits belong to the runtime, not to policies: a buggy policy or a model that spawns
at every step can never exceed them. Hitting one ends the offending thread with status
`limit` and reason `limit:<name>` (the field name below); the request itself goes on
(`max_trace_events` and `deadline_s` end all its threads, and it returns what it has).

The defaults bound a request in total, not only at one moment: a parent that spawns
again after every join would otherwise multiply the tree without end (issue 17).
Without a token budget a request may generate `max_new_tokens` x samples x
`request_tokens_per_sample` tokens (samples: the policy's width, see `policy_width`).
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
    max_threads: int | None = 1024  # threads run per request, in total (refused ones are not run)
    max_spawns_per_thread: int | None = 8  # times one thread may wait on children
    max_spawn_depth: int | None = 3  # nesting of spawned / forked threads (root = 0)
    max_children_per_spawn: int | None = 8  # children one spawn / parallel block may create
    tokens_per_thread: int | None = 4096
    tokens_per_request: int | None = None  # the request's token budget
    request_tokens_per_sample: int | None = 16  # without a budget: max_new_tokens x samples x this
    max_trace_events: int | None = 100_000  # events one request may trace (its memory)
    deadline_s: float | None = None  # wall clock from the moment the request is added

    def __post_init__(self) -> None:
        for name in ("max_live_threads", "max_threads", "max_spawns_per_thread", "max_spawn_depth",
                     "max_children_per_spawn", "tokens_per_thread", "tokens_per_request",
                     "request_tokens_per_sample", "max_trace_events"):
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

    def request_tokens(self, max_new_tokens: int, samples: int) -> tuple[int | None, str]:
        """The request's cap on generated tokens and the limit that sets it: the budget
        `tokens_per_request`, else `max_new_tokens` x `samples` x `request_tokens_per_sample`."""
        if self.tokens_per_request is not None or self.request_tokens_per_sample is None:
            return self.tokens_per_request, "tokens_per_request"
        return max_new_tokens * max(samples, 1) * self.request_tokens_per_sample, "request_tokens_per_sample"

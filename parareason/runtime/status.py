"""Status: the one set of thread and sample states (re-exported by runtime/policy.py).

A `StrEnum`, so a status compares equal to its string (`Status.FINISHED == "finished"`),
formats as it and goes to JSON unchanged: the output contract's values stay
"finished", "pruned", ... A sample reports `running` while live, then its end state.
"""
from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"  # created, not yet on the backend
    RUNNING = "running"  # a backend sequence extends it
    WAITING = "waiting"  # its children run (spawn / parallel block); resumes after the join
    FINISHED = "finished"
    PRUNED = "pruned"
    CANCELLED = "cancelled"
    FAILED = "failed"
    LIMIT = "limit"  # ended by a runtime limit (reason `limit:<name>`)


LIVE_STATES = frozenset({Status.PENDING, Status.RUNNING, Status.WAITING})
END_STATES = frozenset({Status.FINISHED, Status.PRUNED, Status.CANCELLED, Status.FAILED, Status.LIMIT})

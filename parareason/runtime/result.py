"""Result of one request: the output contract (one JSON object per prompt)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ThreadRecord:
    id: str
    parent: str | None
    status: str  # finished | pruned | cancelled | failed | limit
    reason: str | None
    tokens: int  # tokens this thread generated
    answer: str | None


@dataclass
class Result:
    id: str
    prompt: str
    answer: str | None
    correct: bool | None  # None when no reference answer exists
    policy: str
    protocol: str
    threads: list[ThreadRecord] = field(default_factory=list)
    # Refused threads (never run, 0 tokens) not listed in `threads`, counted by reason:
    # only the first few refused are listed, so a spawn bomb cannot grow the row.
    omitted_threads: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    error: str | None = None
    reference: str | None = None
    # Policy-specific detail (votes, tokens saved, per-sub-problem budgets, ...).
    details: dict[str, Any] = field(default_factory=dict)
    # Event trace (list of event dicts) when requested; omitted from JSON when None.
    trace: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["trace"] is None:
            del d["trace"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        d = dict(d)
        d["threads"] = [ThreadRecord(**t) for t in d.get("threads", [])]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

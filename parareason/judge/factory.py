"""Build a judge by name (CLI options, policy parameters)."""
from __future__ import annotations

import threading
from functools import lru_cache

from parareason.judge.base import Judge

KINDS = ("embedding", "trained", "answer", "llm")


def make_judge(kind: str, *, head: str | None = None, calibration: str | None = None,
               backend: object | None = None) -> Judge:
    """`embedding` (optionally a calibration JSON), `trained` (needs `head`), `answer`,
    `llm` (needs a backend of its own)."""
    if kind == "embedding":
        from parareason.judge.embedding import EmbeddingJudge

        return EmbeddingJudge.from_calibration_file(calibration) if calibration else EmbeddingJudge()
    if kind == "trained":
        if not head:
            raise ValueError("the trained judge needs a head file (--head PATH)")
        from parareason.judge.trained import TrainedJudge

        return TrainedJudge.load(head)
    if kind == "answer":
        from parareason.judge.answer import AnswerJudge

        return AnswerJudge()
    if kind == "llm":
        if backend is None:
            raise ValueError("the llm judge needs a backend")
        from parareason.judge.llm import LLMJudge

        return LLMJudge(backend)  # type: ignore[arg-type]
    raise ValueError(f"unknown judge {kind!r}; choose from {', '.join(KINDS)}")


_SHARED_LOCK = threading.Lock()  # the server builds policies on several threads


def shared_judge(kind: str, head: str | None = None, calibration: str | None = None) -> Judge:
    """`make_judge` for the file-based kinds, built once per process and then shared: a
    policy is built per request, and reloading MiniLM and the head for each question of
    a prompt file would cost seconds apiece. Judges keep no per-request state."""
    with _SHARED_LOCK:  # lru_cache alone may build the same judge twice under a race
        return _shared_judge(kind, head, calibration)


@lru_cache(maxsize=8)
def _shared_judge(kind: str, head: str | None, calibration: str | None) -> Judge:
    return make_judge(kind, head=head, calibration=calibration)

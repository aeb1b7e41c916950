"""Running a real policy on the real scheduler with the ScriptedBackend test double (no
model), shared by the scripted policy tests and the reference-parity tests.

Replies are scripted per sample (the sample index is read from the sequence id) or per
prompt. `MarkedConfidenceBackend` makes confidence readable from the text: every '?'
token is an unsure token (logprob -2, flat alternatives), every other token is sure
(logprob -0.05, alternatives far below), so a test can write a low-confidence trace.
"""
from __future__ import annotations

import re
from typing import Callable

from parareason.backends.base import SamplingParams, SeqUpdate
from parareason.backends.scripted import CharTokenizer, ScriptContext, ScriptedBackend
from parareason.policies import make_policy
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.runtime.scheduler import Scheduler

UNSURE_ID = CharTokenizer().encode("?")[0]
SURE_LP, UNSURE_LP = -0.05, -2.0


def _top(tok: int, k: int) -> list[tuple[int, float]]:
    if tok == UNSURE_ID:  # flat: alternatives almost as likely
        return [(tok, UNSURE_LP)] + [(tok + i, UNSURE_LP - 0.1 * i) for i in range(1, k)]
    return [(tok, SURE_LP)] + [(tok + i, -8.0 - i) for i in range(1, k)]


class MarkedConfidenceBackend(ScriptedBackend):
    """ScriptedBackend (test double) whose logprobs are set by the text: '?' = unsure."""

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates = super().step(timeout_s)
        for u in updates:
            u.logprobs = [UNSURE_LP if t == UNSURE_ID else SURE_LP for t in u.token_ids]
            if u.top_logprobs is not None:
                k = len(u.top_logprobs[0]) if u.top_logprobs and u.top_logprobs[0] else 1
                u.top_logprobs = [_top(t, k) for t in u.token_ids]
        return updates


def sample_index(ctx: ScriptContext) -> int:
    """'q|s3.t0|1' -> 3 (the scheduler names samples s0, s1, ... in launch order)."""
    return int(re.search(r"\|s(\d+)\.", ctx.seq_id).group(1))


def by_sample(replies: list[str]) -> Callable[[ScriptContext], str]:
    return lambda ctx: replies[sample_index(ctx) % len(replies)]


def run(policy_name: str, script: Callable[[ScriptContext], str], *, budget: int | None = None,
        max_new_tokens: int = 200, tokens_per_step: int = 1, backend_kw: dict | None = None,
        **params) -> tuple[Result, ScriptedBackend]:
    backend = MarkedConfidenceBackend(script, tokens_per_step=tokens_per_step, **(backend_kw or {}))
    spec = RequestSpec(id="q", prompt="What is 2+2?", policy=make_policy(policy_name, **params),
                       params=SamplingParams(temperature=0.7, max_new_tokens=max_new_tokens, seed=0),
                       limits=Limits(tokens_per_request=budget), reference="4")
    [result] = list(Scheduler(backend).run([spec]))
    assert result.error is None, result.error
    return result, backend


def policy_events(result: Result, kind: str) -> list[dict]:
    return [e for e in result.trace or [] if e.get("kind") == kind]


def statuses(result: Result) -> list[str]:
    return [t.status for t in result.threads]


def max_live(result: Result, after: str | None = None) -> int:
    """Most samples running at once (after the first event of kind `after`, if given)."""
    live = peak = 0
    counting = after is None
    for e in result.trace or []:
        counting = counting or e.get("kind") == after
        if e["ev"] == "submit":
            live += 1
        elif e["ev"] == "run_end":
            live -= 1
        if counting:
            peak = max(peak, live)
    return peak

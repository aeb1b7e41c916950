"""Test doubles for DeepPrune policy tests: a fake PolicyContext that advances
scripted samples, and a scripted judge that reads a hidden label from the text.
Deterministic, no model; used only by tests/test_deepprune*.py."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from parareason.judge.base import Judge
from parareason.runtime.policy import Policy, PolicyContext, SampleOverrides, SampleView


@dataclass
class Plan:
    length: int  # tokens until the sample ends
    label: str  # its final answer
    ending: str = "finished"  # or "failed" / "limit"


@dataclass
class FakeSample:
    id: str
    plan: Plan
    tag: str = ""
    temperature: float = 1.0
    status: str = "running"
    generated_tokens: int = 0
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: None = None

    @property
    def live(self) -> bool:
        return self.status == "running"

    @property
    def token_ids(self) -> list[int]:
        return list(range(self.generated_tokens))

    @property
    def text(self) -> str:
        return f"[label={self.plan.label}] " + "step " * self.generated_tokens

    @property
    def answer(self) -> str | None:
        # Adversarial on purpose: even a pruned/failed sample exposes an answer, so the
        # policy must itself restrict the vote to finished samples.
        return self.plan.label


class FakeContext(PolicyContext):
    def __init__(self, plans: Sequence[Plan]):
        self._plans = list(plans)
        self._samples: list[FakeSample] = []
        self.events: list[dict[str, Any]] = []
        self.stopped = False

    prompt = "fake question"  # type: ignore[assignment]

    @property
    def samples(self) -> Sequence[SampleView]:
        return self._samples  # type: ignore[return-value]

    @property
    def open_scopes(self) -> int:
        return 0

    def launch(self, *, prompt=None, overrides: SampleOverrides | None = None, tag: str = "", protocol=None):
        if not self._plans:
            return None
        s = FakeSample(id=f"s{len(self._samples)}", plan=self._plans.pop(0), tag=tag)
        self._samples.append(s)
        return s

    def abort(self, sample, *, status: str = "pruned", reason: str = "") -> None:
        s = next(x for x in self._samples if x.id == sample.id)
        if s.live:
            s.status = status
            self.events.append({"kind": "abort", "sample": s.id, "status": status, "reason": reason})

    def stop(self, reason: str) -> None:
        self.stopped = True
        for s in self._samples:
            if s.live:
                s.status = "cancelled"

    def scope(self, *, policy, prompt=None, budget=None, tag=""):
        raise NotImplementedError("the fake context has no nested scopes")

    def tokens_used(self) -> int:
        return sum(s.generated_tokens for s in self._samples)

    def budget_left(self) -> int | None:
        return None

    def record(self, kind: str, **data: Any) -> None:
        self.events.append({"kind": kind, **data})

    def decode(self, token_ids) -> str:
        return " ".join(map(str, token_ids))

    def extract_answer(self, text: str) -> str | None:
        m = re.search(r"label=(\w+)", text)
        return m.group(1) if m else None

    def same_answer(self, a, b) -> bool:
        return a is not None and a == b


class LabelJudge(Judge):
    """Scripted judge: 1.0 when the hidden labels match, else 0.0; with `noise`, a
    deterministic fraction of answers is replaced by a random score."""

    name = "label-scripted"

    def __init__(self, noise: float = 0.0, seed: int = 0):
        self.noise, self.seed = noise, seed

    def score(self, trace_a: str, trace_b: str) -> float:
        la = re.search(r"label=(\w+)", trace_a).group(1)
        lb = re.search(r"label=(\w+)", trace_b).group(1)
        rng = random.Random(hash((trace_a, trace_b, self.seed)) & 0xFFFFFFFF)
        if rng.random() < self.noise:
            return rng.random()
        return 1.0 if la == lb else 0.0


def drive(policy: Policy, ctx: FakeContext, pick: Callable[[list[FakeSample]], tuple[FakeSample, int]],
          check: Callable[[], None] = lambda: None, max_events: int = 10_000) -> None:
    """Advance live samples (which one and by how much chosen by `pick`) until the policy
    is done, calling the hooks as the scheduler would and `check` after every event."""
    policy.start(ctx)
    check()
    for _ in range(max_events):
        if policy.is_done(ctx):
            return
        live = [s for s in ctx._samples if s.live]
        s, n = pick(live)
        n = min(n, s.plan.length - s.generated_tokens)
        s.generated_tokens += n
        s.logprobs.extend([-0.1] * n)
        if s.generated_tokens >= s.plan.length:
            s.status = s.plan.ending
            policy.on_sample_end(ctx, s)
        else:
            policy.on_tokens(ctx, s, n)
            if not s.live:  # pruned by the policy
                policy.on_sample_end(ctx, s)
        check()
    raise AssertionError("policy did not finish")

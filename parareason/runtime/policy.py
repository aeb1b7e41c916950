"""The interface between the runtime and policies.

A *policy* decides which samples live and for how long. A *sample* is one run of the
request's protocol from a root thread (plain: one thread; APR: a root and its spawned
children; ThreadWeaver: a thread with parallel blocks; ParaThinker: N paths plus the
summary). A sample ends with a final text and an extracted answer.

A policy never calls a model: it acts only through its `PolicyContext` (launch,
abort, stop, open a nested scope). The scheduler implements `PolicyContext`, calls
the hooks below after every backend step, and enforces all limits and budgets
itself, so a buggy or greedy policy can never exceed the request's token budget.

Nesting (composition): a policy opens a child scope for another policy instance with
`child_ctx = ctx.scope(policy=child_policy, ...)` and calls `child_policy.start(child_ctx)`.
The scheduler then routes the child scope's sample events to the child policy, and when
`child_policy.is_done(child_ctx)` becomes true it calls `child_policy.finalize`,
closes the scope (aborting its leftovers) and calls the parent's
`on_scope_done(ctx, child_ctx, decision)`. A scope's budget is carved out of its
parent's remaining budget, so the request-level budget holds across any nesting.

Statuses are `Status` members (runtime/status.py, re-exported here): compare a sample's
`status` with `Status.FINISHED`, not with a string.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Sequence

from parareason.runtime.status import Status

__all__ = ["Decision", "Policy", "PolicyContext", "SampleOverrides", "SampleView", "Status", "policy_width"]


@dataclass(frozen=True)
class SampleOverrides:
    """Per-sample changes to the request's sampling settings (None = keep)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None
    top_logprobs: int | None = None  # ask the backend for top-k alternatives (confidence policies)
    seed: int | None = None


class SampleView(Protocol):
    """Read-only view of one sample, as policies see it."""

    id: str
    tag: str  # free label set at launch (e.g. "warmup", "sub-2", "t=0.7")
    temperature: float

    @property
    def live(self) -> bool: ...

    @property
    def status(self) -> Status: ...  # running | finished | pruned | cancelled | failed | limit

    @property
    def generated_tokens(self) -> int: ...  # all tokens of all its threads so far

    @property
    def token_ids(self) -> Sequence[int]: ...  # tokens of the sample's main (answer-bearing) thread

    @property
    def logprobs(self) -> Sequence[float]: ...  # logprob of each token in token_ids

    @property
    def top_logprobs(self) -> Sequence[Sequence[tuple[int, float]]] | None: ...

    @property
    def text(self) -> str: ...  # decoded main-thread text so far (partial while live)

    @property
    def answer(self) -> str | None: ...  # final answer once ended (None if cut by its cap without stating one)


@dataclass
class Decision:
    """What a policy returns when it is done."""

    answer: str | None
    details: dict[str, Any] = field(default_factory=dict)  # votes, tokens saved, ...


class PolicyContext(ABC):
    """What a policy may do. Implemented by the scheduler, one per (nested) scope."""

    @property
    @abstractmethod
    def prompt(self) -> str: """The user's question for this scope."""

    @property
    @abstractmethod
    def samples(self) -> Sequence[SampleView]: """All samples launched in this scope."""

    @property
    @abstractmethod
    def open_scopes(self) -> int: """Nested scopes opened here that have not finished yet."""

    @abstractmethod
    def launch(self, *, prompt: str | None = None, overrides: SampleOverrides | None = None,
               tag: str = "", protocol: str | None = None) -> SampleView | None:
        """Start one sample of `prompt` (default: the scope's prompt) under the request's
        protocol (or `protocol`). Returns None when a limit forbids it (the reason is traced)."""

    @abstractmethod
    def abort(self, sample: SampleView, *, status: Status = Status.PRUNED, reason: str = "") -> None:
        """End a live sample now (its threads are aborted on the backend)."""

    @abstractmethod
    def stop(self, reason: str) -> None:
        """This scope is done: abort every live sample with status 'cancelled'."""

    @abstractmethod
    def scope(self, *, policy: "Policy", prompt: str | None = None, budget: int | None = None,
              tag: str = "") -> "PolicyContext":
        """Open a nested scope driven by `policy` (see module docstring); the caller then
        calls `policy.start(child_ctx)`."""

    @abstractmethod
    def tokens_used(self) -> int: """Tokens generated in this scope (and its sub-scopes)."""

    @abstractmethod
    def budget_left(self) -> int | None: """Generated tokens this scope may still spend (None = unlimited)."""

    @abstractmethod
    def record(self, kind: str, **data: Any) -> None: """Add a policy event to the trace."""

    @abstractmethod
    def decode(self, token_ids: Sequence[int]) -> str: ...

    @property
    def model(self) -> str | None:
        """The request's model: its registry alias (shipped models), else its tokenizer's name."""
        return None

    @abstractmethod
    def extract_answer(self, text: str) -> str | None: ...

    @abstractmethod
    def same_answer(self, a: str | None, b: str | None) -> bool: """math-verify equivalence."""


class Policy(ABC):
    """Base class. Subclasses take a dataclass of parameters in __init__."""

    name: ClassVar[str] = "policy"

    @abstractmethod
    def start(self, ctx: PolicyContext) -> None:
        """Launch the initial samples."""

    def on_tokens(self, ctx: PolicyContext, sample: SampleView, new_tokens: int) -> None:
        """`sample` grew by `new_tokens` tokens this step (read them from the view)."""

    def on_sample_end(self, ctx: PolicyContext, sample: SampleView) -> None:
        """`sample` ended (any status)."""

    def on_scope_done(self, ctx: PolicyContext, scope: PolicyContext, decision: Decision) -> None:
        """A nested scope opened by this policy finished with `decision`."""

    @property
    def width(self) -> int:
        """How many samples it runs side by side: the request's default token cap and the
        backend's expected concurrency scale with it. Default: `params.n`, the sample count
        of the parameter dataclass the built-in policies take, else 1; a policy whose width
        is another value overrides this (DeepPrune's `width`, a wrapper's inner policy)."""
        n = getattr(getattr(self, "params", None), "n", None)
        return n if isinstance(n, int) and n > 0 else 1

    def is_done(self, ctx: PolicyContext) -> bool:
        """Default: done when no sample is live and no nested scope is open."""
        return ctx.open_scopes == 0 and not any(s.live for s in ctx.samples)

    @abstractmethod
    def finalize(self, ctx: PolicyContext) -> Decision:
        """Called once when done (or when limits end the scope): the answer."""


def policy_width(policy: Any) -> int:
    """How many samples a policy runs side by side (`Policy.width`); 1 for anything else."""
    return policy.width if isinstance(policy, Policy) else 1

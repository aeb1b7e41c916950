"""RequestRun: the live state of one request inside the scheduler.

It owns the request's samples, its root scope (the policy's `PolicyContext`) and its
trace, and drives the request's life: start the policy, launch and abort samples for
its scopes (`ScopeHost`), deliver the policy hooks after each step, end at the deadline,
on cancel or when the policy is done, and build the `Result`. Its threads and their
limits live in `ThreadTable` (which protocols act on); the backend traffic in
`BackendFeed`. `Scheduler` drives many of these over one shared backend and token trie.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from parareason.backends.base import Backend, SamplingParams
from parareason.runtime.backend_feed import BackendFeed
from parareason.runtime.limits import limit_reason
from parareason.runtime.policy import Decision, SampleOverrides, policy_width
from parareason.runtime.protocols import Protocol, get_protocol
from parareason.runtime.request import RequestSpec
from parareason.runtime.request_result import build_result
from parareason.runtime.result import Result
from parareason.runtime.sample import Sample
from parareason.runtime.scope import Scope, ScopeHost
from parareason.runtime.status import Status
from parareason.runtime.thread import Thread
from parareason.runtime.thread_table import ThreadTable
from parareason.runtime.trace import Trace, TraceSink
from parareason.runtime.trie import TokenTrie


class PolicyFailure(RuntimeError):
    """Policy hooks kept triggering each other without end."""


class RequestRun(ScopeHost):
    def __init__(self, spec: RequestSpec, backend: Backend, trie: TokenTrie, trace_sink: TraceSink | None) -> None:
        self.spec = spec
        limits = spec.limits
        self.tokenizer = backend.tokenizer
        self.trace = Trace(spec.id, keep=spec.keep_trace, sink=trace_sink, max_events=limits.max_trace_events)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + limits.deadline_s if limits.deadline_s is not None else None
        budget, budget_name = limits.request_tokens(spec.params.max_new_tokens, policy_width(spec.policy))
        self.root = Scope(self, None, prompt=spec.prompt, budget=budget, tag="", policy=spec.policy,
                          scope_id="root", budget_name=budget_name)
        self.table = ThreadTable(limits, trie, backend, self.tokenizer, self.trace)
        self.feed = BackendFeed(spec.id, self.table, backend, trie, self.trace)
        self.samples: list[Sample] = []
        self._protocols: dict[str, Protocol] = {}
        self._prompt_ids: dict[tuple[str, str], list[int]] = {}
        self.done = False
        self.error: str | None = None
        self.result: Result | None = None

    @property
    def threads(self) -> list[Thread]:
        return self.table.threads

    # -- start / protocols -------------------------------------------------------------
    def start(self) -> None:
        self.trace.emit("request", prompt_chars=len(self.spec.prompt), policy=self.spec.policy.name,
                        protocol=self.spec.protocol)
        self._guard(lambda: self.spec.policy.start(self.root))

    def protocol(self, name: str | None) -> Protocol:
        name = name or self.spec.protocol
        if name not in self._protocols:
            config = self.spec.protocol_config if name == self.spec.protocol else {}
            self._protocols[name] = get_protocol(name, **config)
        return self._protocols[name]

    def _protocol_notes(self) -> dict:
        notes: dict = {}
        for protocol in self._protocols.values():
            notes.update(protocol.result_details())
        return notes

    def prompt_ids(self, protocol: Protocol, prompt: str) -> list[int]:
        key = (protocol.name, prompt)
        if key not in self._prompt_ids:
            msgs = protocol.messages(prompt, self.spec.system_prompt)
            self._prompt_ids[key] = list(self.tokenizer.chat_ids(msgs, add_generation_prompt=True))
        return self._prompt_ids[key]

    # -- ScopeHost -----------------------------------------------------------------------
    def launch_sample(self, scope: Scope, prompt: str, overrides: SampleOverrides, tag: str,
                      protocol_name: str | None) -> Sample | None:
        refuse = None
        if self.done or scope.closed or scope.stopped:
            refuse = "scope closed"
        elif scope.budget_left() == 0:
            refuse = limit_reason(scope.bounding_budget_name())
        elif (full := self.table.full()) is not None:
            refuse = limit_reason(full)
        if refuse is not None:
            self.trace.emit("launch_refused", scope=scope.id, tag=tag, reason=refuse)
            return None
        protocol = self.protocol(protocol_name)
        params = _apply_overrides(self.spec.params, overrides)
        sample = Sample(f"s{len(self.samples)}", scope, tag=tag, prompt=prompt, params=params,
                        protocol=protocol, decode=self.tokenizer.decode)
        self.samples.append(sample)
        scope.add_sample(sample)
        self.trace.emit("launch", sample=sample.id, scope=scope.id, tag=tag, protocol=protocol.name,
                        temperature=params.temperature, seed=params.seed)
        protocol.start(self.table, sample, self.prompt_ids(protocol, prompt))
        self.table.close_sample_if_done(sample)
        return sample

    def abort_sample(self, sample: Any, status: Status, reason: str) -> None:
        self.table.abort_sample(sample, status, reason)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids)

    @property
    def model(self) -> str | None:
        return getattr(self.tokenizer, "name", None)

    # -- the scheduler's calls -------------------------------------------------------------
    def submit_pending(self, seq_owner: dict[str, tuple["RequestRun", Thread]]) -> None:
        self.feed.submit_pending(seq_owner, self)

    def check_deadline(self, now: float) -> None:
        if self.done or self.deadline is None or now < self.deadline:
            return
        self.trace.emit("deadline", elapsed_s=round(now - self.t0, 3))
        self.end_all(Status.LIMIT, limit_reason("deadline_s"))
        self.finish_request(error=None, call_hooks=False)

    def after_step(self) -> None:
        """Budgets, the trace bound, policy hooks, scope completion, request completion."""
        if self.done:
            return
        self.feed.end_step()
        self._enforce_budgets()
        if self.trace.full:
            self.trace.emit("trace_full", events=self.trace.recorded)
            self.end_all(Status.LIMIT, limit_reason("max_trace_events"))
            self.finish_request(error=None, call_hooks=False)
            return
        ok, _ = self._guard(self._settle)
        if not ok or self.done:
            return
        ok, is_done = self._guard(lambda: self.spec.policy.is_done(self.root))
        if not ok:
            return
        if is_done:
            self.finish_request(error=None)
        elif self.table.live == 0 and not self.table.pending:
            self.finish_request(error="policy stalled: not done but no live sample")

    def cancel(self, reason: str) -> None:
        if self.done:
            return
        self.trace.emit("request_cancel", reason=reason)
        self.end_all(Status.CANCELLED, f"request cancelled: {reason}")
        self.finish_request(error=f"cancelled: {reason}", call_hooks=False)

    # -- internals ---------------------------------------------------------------------
    def end_all(self, status: Status, reason: str) -> None:
        for s in self.samples:
            self.table.abort_sample(s, status, reason)
        self.table.end_live(status, reason)

    def _enforce_budgets(self) -> None:
        for s in self.samples:
            if s.live and s.scope.budget_left() == 0 and any(t.live for t in s.threads):
                self.table.abort_sample(s, Status.LIMIT, limit_reason(s.scope.bounding_budget_name()))

    def _settle(self) -> None:
        """Deliver `on_tokens` and `on_sample_end` to each sample's scope policy, then close
        nested scopes whose policy is done; hooks may launch, abort or open scopes again,
        so loop until nothing is left to deliver."""
        for _ in range(10_000):
            if self.feed.grew:
                for sample, n in self.feed.take_growth().items():
                    if sample.scope.policy is not None and not sample.scope.closed:
                        sample.scope.policy.on_tokens(sample.scope, sample, n)
                continue
            if self.table.ended_samples:
                ended, self.table.ended_samples = self.table.ended_samples, []
                for sample in ended:
                    if sample.scope.policy is not None and not sample.scope.closed:
                        sample.scope.policy.on_sample_end(sample.scope, sample)
                continue
            if self.root.close_done_subscopes():
                continue
            return
        raise PolicyFailure("policy hooks did not settle")

    def _guard(self, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """Run policy/protocol code; any exception ends the request with an error (never a hang)."""
        try:
            return True, fn()
        except Exception as e:  # noqa: BLE001 - a faulty policy must not take the scheduler down
            self.fail(e)
            return False, None

    def fail(self, e: Exception) -> None:
        self.trace.emit("error", error=f"{type(e).__name__}: {e}")
        self.finish_request(error=f"{type(e).__name__}: {e}", call_hooks=False)

    # -- the end -----------------------------------------------------------------------
    def finish_request(self, error: str | None, call_hooks: bool = True) -> None:
        if self.done:
            return
        self.done = True
        self.table.closed = True
        self.error = error
        self.end_all(Status.CANCELLED, "request done")
        if self.root.decision is None:
            decision: Decision | None = None
            try:
                for sub in self.root.subscopes:
                    if sub.closed:
                        continue
                    if call_hooks:  # a normal end: open nested scopes still get finalized
                        sub.close()
                    else:  # an error / cancel / deadline: no more policy hooks but the root's finalize
                        sub.closed = True
                decision = self.spec.policy.finalize(self.root)
            except Exception as e:  # noqa: BLE001
                self.error = self.error or f"policy finalize failed: {type(e).__name__}: {e}"
            self.root.closed = True
            self.root.decision = decision
        if self.error is None and self.samples and all(s.status == Status.FAILED for s in self.samples):
            # e.g. the backend refused the prompt (longer than the model's context): the
            # row failed, and says why (the backend's message has the counts)
            self.error = f"every sample failed: {self.samples[0].end_reason}"
        self.result = build_result(self.spec, self.root.decision or Decision(answer=None), threads=self.table.threads,
                                   usage=self.feed.usage_dict(), error=self.error, started_at=self.t0,
                                   trace=self.trace, protocol_notes=self._protocol_notes(),
                                   omitted=self.table.omitted)


def _apply_overrides(params: SamplingParams, o: SampleOverrides) -> SamplingParams:
    changes = {k: getattr(o, k) for k in ("temperature", "top_p", "top_k", "max_new_tokens", "top_logprobs", "seed")
               if getattr(o, k) is not None}
    return replace(params, **changes) if changes else params

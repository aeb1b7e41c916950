"""ObservedPolicy: wraps a request's policy so the server sees its samples.

The scheduler hands back a `Result` (answer, threads, usage) but an HTTP client wants
the chosen sample's *text*, and a streaming client wants it as it is produced. The
wrapper delegates every hook to the real policy unchanged and, on the side:

* live mode (a single-sample request): after each step it reports the new text of
  the request's first sample, so the stream follows the model token by token;
* at `finalize` it picks the sample whose answer the decision chose (finished before
  cut by a limit, then fewest tokens: with lock-step batching that is the first to
  finish) and keeps its text as the message content.

Both cut the text before the request's stop strings (stops.py): the client never
sees one, and a stream holds back a tail that may still become one.

It runs on the engine thread; `on_text` must be thread-safe (it only enqueues).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView, Status
from parareason.server.stops import cut_at_stop, sendable

TextSink = Callable[[str], None]


def _all_samples(ctx: Any) -> list[SampleView]:
    """Samples of a scope and of its nested scopes (composite policies launch there)."""
    out = list(ctx.samples)
    for sub in getattr(ctx, "subscopes", ()):  # scheduler scopes expose their children
        out.extend(_all_samples(sub))
    return out


def choose_sample(ctx: PolicyContext, samples: Sequence[SampleView], answer: str | None) -> SampleView | None:
    """The sample that best stands for the decision's answer."""
    if answer is not None:
        matching = [s for s in samples if s.answer is not None and ctx.same_answer(s.answer, answer)]
        if matching:
            return min(matching, key=lambda s: (s.status != Status.FINISHED, s.generated_tokens))
    ended = [s for s in samples if s.status in (Status.FINISHED, Status.LIMIT) and s.text]
    return min(ended, key=lambda s: (s.status != Status.FINISHED, s.generated_tokens)) if ended else None


def stable_text(text: str) -> str:
    """Text safe to send now: a trailing U+FFFD is half of a multi-byte character
    whose other bytes are in the next token, so it is held back."""
    return text.rstrip("\ufffd")


class ObservedPolicy(Policy):
    def __init__(self, inner: Policy, *, live: bool = False, on_text: TextSink | None = None,
                 stops: Sequence[str] = ()) -> None:
        self.inner = inner
        self.stops = tuple(stops)
        self.name = inner.name  # the Result reports the real policy's name
        self.live = live and on_text is not None
        self.on_text = on_text
        self.followed: SampleView | None = None  # the live-streamed sample
        self.sent = ""  # text already streamed
        self.chosen: SampleView | None = None
        self.chosen_text = ""

    @property
    def width(self) -> int:
        return self.inner.width  # the request's token cap is the real policy's

    def start(self, ctx: PolicyContext) -> None:
        self.inner.start(ctx)

    def on_tokens(self, ctx: PolicyContext, sample: SampleView, new_tokens: int) -> None:
        self.inner.on_tokens(ctx, sample, new_tokens)
        if not self.live:
            return
        if self.followed is None:
            self.followed = sample
        if sample is self.followed:
            self._send(sendable(stable_text(sample.text), self.stops))

    def on_sample_end(self, ctx: PolicyContext, sample: SampleView) -> None:
        self.inner.on_sample_end(ctx, sample)

    def on_scope_done(self, ctx: PolicyContext, scope: PolicyContext, decision: Decision) -> None:
        self.inner.on_scope_done(ctx, scope, decision)

    def is_done(self, ctx: PolicyContext) -> bool:
        return self.inner.is_done(ctx)

    def finalize(self, ctx: PolicyContext) -> Decision:
        decision = self.inner.finalize(ctx)
        self.chosen = choose_sample(ctx, _all_samples(ctx), decision.answer)
        self.chosen_text = cut_at_stop(self.chosen.text, self.stops) if self.chosen is not None else ""
        return decision

    def _send(self, text: str) -> None:
        # Only ever append: a streamed prefix cannot be taken back.
        if len(text) > len(self.sent) and text.startswith(self.sent):
            delta, self.sent = text[len(self.sent):], text
            assert self.on_text is not None
            self.on_text(delta)

    def remaining_text(self) -> str:
        """What a stream still has to send so the client ends up with `chosen_text`."""
        if self.chosen_text.startswith(self.sent):
            return self.chosen_text[len(self.sent):]
        return ""  # live-streamed a sample that was not chosen (rare): the detail object has the answer

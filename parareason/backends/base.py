"""The one interface every backend implements.

The runtime speaks to a model only through `Backend`: submit sequences (a thread's
full context as token ids = its trie path), step, abort. A backend knows nothing of
threads, protocols or policies. Embedded engine, SGLang client, replay and scripted
backends all implement it, so the scheduler never special-cases one of them.

Contract
--------
* `submit(req)` queues a sequence. `req.input_ids` is the exact context; a backend
  never re-tokenizes text. Sequences may be submitted while others run
  (continuous batching).
* `step()` advances the backend and returns what is new since the last call: for the
  embedded engine one decode step of every running sequence (plus any prefills);
  for a streaming backend whatever tokens arrived (it may block briefly, up to
  `timeout_s`, waiting for at least one). A sequence is reported finished exactly
  once (`SeqUpdate.finished`), and never appears in a later `step()`.
* `abort(seq_id)` ends a sequence at once: it is not extended by any later step and
  its resources (KV) are released. The backend reports it once more with
  `finish_reason="abort"` so the caller learns how many tokens it got. Aborting an
  unknown or finished id is a no-op.
* Failures never raise out of `step()` for a single sequence: the sequence finishes
  with `finish_reason="error"` and `error` set. Only a backend-wide fault (e.g. the
  model cannot load) raises `BackendError`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Protocol, Sequence


class BackendError(RuntimeError):
    """A backend-wide failure (cannot load, cannot connect at all, protocol mismatch)."""


@dataclass(frozen=True)
class SamplingParams:
    """Per-sequence sampling and stopping. temperature == 0 means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = whole vocabulary
    seed: int | None = None  # per-sequence RNG seed: same seed + same context -> same tokens
    max_new_tokens: int = 256
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    top_logprobs: int = 0  # alternatives per position to report (0 = only the sampled token)


@dataclass(frozen=True)
class GenerationRequest:
    seq_id: str
    input_ids: tuple[int, ...]
    params: SamplingParams
    # Free-form routing hint: sequences with the same key share a prefix (one request's
    # threads); scale-out backends send them to the same worker.
    affinity_key: str | None = None


# Finish reasons a backend may report.
FINISH_EOS = "eos"
FINISH_STOP_STRING = "stop_string"
FINISH_STOP_TOKEN = "stop_token"
FINISH_LENGTH = "length"
FINISH_ABORT = "abort"
FINISH_ERROR = "error"


@dataclass
class SeqUpdate:
    """What one `step()` produced for one sequence."""

    seq_id: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # of each sampled token
    # per position: [(token_id, logprob), ...] best first, when params.top_logprobs > 0
    top_logprobs: list[list[tuple[int, float]]] | None = None
    finished: bool = False
    finish_reason: str | None = None
    matched_stop: str | int | None = None  # the stop string / token id that ended it
    error: str | None = None
    # Prefill accounting, reported once (normally on the sequence's first update):
    prompt_tokens: int = 0  # len(input_ids)
    cached_tokens: int = 0  # context tokens whose KV was reused (prefix sharing / radix cache)
    prefill_computed_tokens: int = 0  # context tokens actually run through the model


@dataclass
class Usage:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_computed_tokens: int = 0
    cached_tokens: int = 0

    def add_update(self, u: SeqUpdate, *, accepted: int | None = None) -> None:
        """Count one update; `accepted`: how many of its tokens the caller kept (default
        all; a request drops tokens past a budget or after an abort)."""
        self.prompt_tokens += u.prompt_tokens
        self.generated_tokens += len(u.token_ids) if accepted is None else accepted
        self.prefill_computed_tokens += u.prefill_computed_tokens
        self.cached_tokens += u.cached_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "prefill_computed_tokens": self.prefill_computed_tokens,
            "cached_tokens": self.cached_tokens,
        }


class Tokenizer(Protocol):
    """What the runtime needs of a tokenizer (a thin wrapper over a HF tokenizer)."""

    eos_token_ids: frozenset[int]
    name: str  # identifies vocabulary, checked against remote servers

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def chat_ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]: ...


@dataclass
class PromptScores:
    """Log-probabilities of a prompt's own tokens (`Backend.score_prompt`).

    `logprobs[i]` is log p(input_ids[i+1] | input_ids[:i+1]): the first token has no
    entry (nothing precedes it). `top_logprobs[i]` holds the best alternatives at that
    position, best first, when asked for. `next_top` is the distribution after the
    whole prompt (best first, at least one entry): its head is the greedy next token.
    """

    input_ids: list[int]
    logprobs: list[float]
    top_logprobs: list[list[tuple[int, float]]] | None
    next_top: list[tuple[int, float]]


class Backend(ABC):
    """Abstract backend. See the module docstring for the contract."""

    name: str = "backend"
    tokenizer: Tokenizer
    # What a remote backend's start-up checks found about its server (logprob scaling,
    # whether seeds repeat, context length, ...): printed at load, kept in results' details.
    facts: Mapping[str, Any] = MappingProxyType({})  # read-only: never shared mutable state

    @abstractmethod
    def submit(self, req: GenerationRequest) -> None: ...

    @abstractmethod
    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]: ...

    @abstractmethod
    def abort(self, seq_id: str) -> None: ...

    @abstractmethod
    def has_work(self) -> bool:
        """True while any submitted sequence has not yet been reported finished."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, connections, memory)."""

    def expect_concurrency(self, sequences: int) -> None:  # noqa: B027 - optional hook
        """Hint: about `sequences` will be submitted together (a local engine may widen its
        batch to run them in one forward). Remote servers schedule for themselves."""

    @property
    def context_length(self) -> int | None:
        """Optional: tokens of context (prompt + generated) a sequence may hold, when the
        backend knows it; the server refuses a longer prompt with a 400 before scheduling."""
        return None

    def score_prompt(self, input_ids: Sequence[int], top_logprobs: int = 0) -> PromptScores:
        """Optional: score a prompt's tokens with one forward pass (no sampling, no KV kept);
        `/v1/completions` with `echo` uses it. Called between `step()`s, from the thread
        that steps the backend. Backends that cannot score raise `BackendError`."""
        raise BackendError(f"the {self.name} backend does not support prompt scoring "
                           "(logprobs of prompt tokens); use the embedded backend")

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

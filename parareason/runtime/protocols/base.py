"""Protocol interface: how a sample's threads are created, stopped and joined.

A protocol never talks to the backend. It acts through `ThreadOps` (implemented by the
scheduler per request), which applies every limit: a thread the limits forbid is
still returned, already ended with status `limit`, so the protocol can report it.

Markers are parsed from `ThreadOps.decode_raw` text (special tokens kept), since a
trained checkpoint's markers are special tokens that a plain `decode` drops.

Control markers are recognised only in a thread's *generated* tokens of its current
backend run (`Thread.run_ids()`), never in the prompt or in runtime-inserted text:
markers a user types are data. Markers are also passed to the backend as stop
strings, so a thread halts right after one and the protocol reacts.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

from parareason.backends.base import Tokenizer
from parareason.runtime.status import Status
from parareason.runtime.thread import Thread


class ThreadOps(ABC):
    """What a protocol may do to threads (the scheduler implements it per request)."""

    tokenizer: Tokenizer

    @abstractmethod
    def new_thread(self, sample: Any, ids: Sequence[int], *, parent: Thread | None = None, role: str,
                   stop_strings: tuple[str, ...] = (), child_index: int = 0) -> Thread:
        """A thread whose context is `ids` (shares trie nodes with equal prefixes)."""

    @abstractmethod
    def fork(self, parent: Thread, extra_ids: Sequence[int], *, role: str,
             stop_strings: tuple[str, ...] = (), child_index: int = 0) -> Thread:
        """A child branching at `parent`'s current trie node, then `extra_ids`."""

    @abstractmethod
    def append(self, thread: Thread, ids: Sequence[int]) -> None:
        """Runtime-inserted tokens (join results, closing tags) at `thread`'s end."""

    @abstractmethod
    def wait(self, thread: Thread) -> None:
        """running -> waiting (its children run)."""

    @abstractmethod
    def resume(self, thread: Thread) -> None:
        """Back to the backend with the thread's current context (next step)."""

    @abstractmethod
    def finish(self, thread: Thread, reason: str, status: Status = Status.FINISHED) -> None:
        """End a thread (cancelling its live subtree first)."""

    @abstractmethod
    def record(self, kind: str, **data: Any) -> None:
        """Trace a protocol event."""

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def decode_raw(self, ids: Sequence[int]) -> str:
        """Decode keeping special tokens: markers that are special tokens of a checkpoint
        (`</Thread>`, `<think1>`, ...) vanish from `decode`, so markers are parsed here."""
        raw = getattr(self.tokenizer, "decode_raw", None)
        return raw(ids) if raw is not None else self.tokenizer.decode(ids)

    def backend_supports(self, feature: str) -> bool:
        """Whether the backend offers an optional feature (e.g. "parathinker_native")."""
        probe = getattr(getattr(self, "backend", None), "supports", None)
        return bool(probe(feature)) if callable(probe) else False

    def bos_ids(self) -> list[int]:
        """The tokenizer's BOS id as a list (empty when it has none): for prompts built
        without a chat template, as the trained formats do."""
        bos = getattr(getattr(self.tokenizer, "hf", None), "bos_token_id", None)
        return [int(bos)] if bos is not None else []


class Protocol(ABC):
    """Base class. `config` holds marker strings and knobs (see each protocol's `defaults`),
    plus `instructions` to replace the default system prompt; unknown keys raise."""

    name: ClassVar[str] = "protocol"
    dialect: ClassVar[str] = "prompted"  # "trained": a paper's checkpoint format (see the registry)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **config: Any) -> None:
        unknown = set(config) - set(self.defaults) - {"instructions"}
        if unknown:
            raise ValueError(f"protocol {self.name}: unknown config keys {sorted(unknown)}")
        self.config = {**self.defaults, **config}
        self.instructions: str = config.get("instructions", self.default_instructions())

    def default_instructions(self) -> str:
        return ""

    def messages(self, prompt: str, system_prompt: str | None) -> list[dict[str, str]]:
        """Default chat template: a system message with the protocol's instructions."""
        system = system_prompt if system_prompt is not None else self.instructions
        msgs = [{"role": "system", "content": system}] if system else []
        return msgs + [{"role": "user", "content": prompt}]

    @abstractmethod
    def start(self, ops: ThreadOps, sample: Any, prompt_ids: Sequence[int]) -> None:
        """Create the sample's first thread(s) and set `sample.main` where known."""

    @abstractmethod
    def on_run_end(self, ops: ThreadOps, thread: Thread, finish_reason: str, matched_stop: str | int | None) -> None:
        """The thread's backend run ended on its own (eos, stop string/token, length).

        The thread is still `running`; the protocol must finish it, make it wait on
        children, or append and resume it."""

    def on_thread_end(self, ops: ThreadOps, thread: Thread) -> None:
        """A thread of the sample ended (any status), e.g. the last child of a join."""

    def result_details(self) -> dict[str, Any]:
        """Notes for `Result.details` (e.g. an approximation this protocol made)."""
        return {}


def unclosed(text: str, open_marker: str, close_marker: str) -> bool:
    """True when the last `open_marker` in `text` has no `close_marker` after it."""
    i = text.rfind(open_marker)
    return i >= 0 and text.find(close_marker, i + len(open_marker)) < 0


def closed_by(ops: ThreadOps, thread: Thread, marker: str, matched_stop: str | int | None) -> str | None:
    """The run's text up to and including `marker` when the run ended at that marker, else None.

    Backends differ at a stop string: the last token may carry characters past the
    marker (it is then cut off here, for parsing only), or the marker may have been
    dropped from the tokens (its tokens are then appended so the context shows it)."""
    text = ops.decode_raw(thread.run_ids())
    if matched_stop != marker and not text.endswith(marker):
        return None
    i = text.rfind(marker)
    if i < 0:
        ops.append(thread, ops.encode(marker))
        return text + marker
    return text[:i + len(marker)]


def block_body(text: str, open_marker: str, close_marker: str) -> str | None:
    """What stands between the last `open_marker` and the closing marker that ends `text`
    (text as `closed_by` returns it); None when `text` has no `open_marker`."""
    start = text.rfind(open_marker)
    if start < 0:
        return None
    return text[start + len(open_marker):len(text) - len(close_marker)]


def end_reason(finish_reason: str, matched_stop: str | int | None) -> str:
    if finish_reason == "stop_string" and matched_stop is not None:
        return f"stop:{matched_stop}"
    return finish_reason

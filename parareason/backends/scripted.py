"""ScriptedBackend: a deterministic TEST DOUBLE of a model backend (never a default).

It exists for unit, property and scheduler-overhead tests: no model runs. A *script*
maps a sequence's context to the text the "model" emits from there (then EOS):

    ScriptedBackend(lambda ctx: "The answer is \\boxed{4}.")              # ctx: ScriptContext
    ScriptedBackend.from_table({"2+2": "\\boxed{4}"}, default="no idea")  # last matching key wins

The character-level `CharTokenizer` makes one token per character, so token counts in
tests are easy to reason about. Like a real backend it honours stop strings (checked
on generated text only), stop token ids, max_new_tokens and abort; emits
`tokens_per_step` tokens per step (1 = streaming, many = chunked); can sleep
`latency_s` per step; reports a sequence whose script raises as `finish_reason="error"`;
and reports prefix-cache accounting as the longest common prefix with any earlier
submitted context or finished sequence, like a radix cache that never evicts.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from parareason.backends.base import (
    FINISH_ABORT, FINISH_EOS, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP_STRING, FINISH_STOP_TOKEN, Backend,
    GenerationRequest, SamplingParams, SeqUpdate,
)

EOS_ID = 0
_OFFSET = 1  # token id = code point + 1, so 0 stays free for EOS


class CharTokenizer:
    """One token per character (id = code point + 1); EOS = 0. A test tokenizer."""

    name = "scripted-char"
    eos_token_ids = frozenset({EOS_ID})

    def encode(self, text: str) -> list[int]:
        return [ord(c) + _OFFSET for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i - _OFFSET) for i in ids if i != EOS_ID)

    def chat_ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        if add_generation_prompt:
            text += "<|assistant|>\n"
        return self.encode(text)


@dataclass(frozen=True)
class ScriptContext:
    """What a script sees: the full context of one submitted sequence."""

    ids: tuple[int, ...]
    text: str  # decoded context (prompt and everything before this run)
    params: SamplingParams
    seq_id: str

    @property
    def assistant_text(self) -> str:
        """Text after the last assistant header: what this thread has said so far."""
        marker = "<|assistant|>\n"
        i = self.text.rfind(marker)
        return self.text[i + len(marker):] if i >= 0 else ""


Script = Callable[[ScriptContext], str]


@dataclass
class _Seq:
    req: GenerationRequest
    out: list[int]  # the whole continuation the script asked for
    error: str | None = None
    pos: int = 0  # next index into out
    generated: list[int] = field(default_factory=list)
    text: str = ""  # generated text so far (stop strings are checked here only)
    aborted: bool = False
    cached: int = 0  # context tokens found in the prefix cache at submit
    reported_prefill: bool = False


def _logprob(seed: int | None, seq_id: str, pos: int, token: int) -> float:
    # Deterministic pseudo logprob in (-3, 0): varies per token, same for the same inputs.
    h = hashlib.blake2b(f"{seed}:{pos}:{token}".encode(), digest_size=4).digest()
    return -3.0 * int.from_bytes(h, "little") / 2**32


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, script: Script, *, tokens_per_step: int = 1, latency_s: float = 0.0,
                 tokenizer: CharTokenizer | None = None, prefix_cache: bool = True,
                 max_batch: int | None = None) -> None:
        if tokens_per_step < 1:
            raise ValueError("tokens_per_step must be >= 1")
        self.script = script
        self.tokens_per_step = tokens_per_step
        self.latency_s = latency_s
        self.tokenizer = tokenizer or CharTokenizer()
        self.prefix_cache = prefix_cache
        self.max_batch = max_batch  # at most this many sequences advance per step (None = all)
        self._seqs: dict[str, _Seq] = {}
        self._cache_root: dict[int, dict] = {}  # token trie of every sequence seen
        self.submitted: list[GenerationRequest] = []  # every request, in order (tests inspect it)
        self.steps = 0

    @classmethod
    def from_table(cls, table: dict[str, str], default: str = "", **kw: object) -> "ScriptedBackend":
        """Script from a table: the reply of the key occurring last in the context."""
        def script(ctx: ScriptContext) -> str:
            best, best_at = default, -1
            for key, reply in table.items():
                at = ctx.text.rfind(key)
                if at > best_at:
                    best, best_at = reply, at
            return best
        return cls(script, **kw)  # type: ignore[arg-type]

    # -- Backend -------------------------------------------------------------------------
    def submit(self, req: GenerationRequest) -> None:
        if req.seq_id in self._seqs:
            raise ValueError(f"duplicate seq_id {req.seq_id}")
        self.submitted.append(req)
        ctx = ScriptContext(req.input_ids, self.tokenizer.decode(req.input_ids), req.params, req.seq_id)
        seq = _Seq(req, [], cached=self._cached_prefix(req.input_ids))
        self._remember(req.input_ids)  # its prefill KV now exists for later sequences
        try:
            reply = self.script(ctx)
            seq.out = self.tokenizer.encode(reply) + ([] if req.params.ignore_eos else [EOS_ID])
        except Exception as e:  # noqa: BLE001 - a failing sequence is reported, never raised
            seq.error = f"{type(e).__name__}: {e}"
        self._seqs[req.seq_id] = seq

    def abort(self, seq_id: str) -> None:
        seq = self._seqs.get(seq_id)
        if seq is not None:
            seq.aborted = True

    def has_work(self) -> bool:
        return bool(self._seqs)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        if self.latency_s:
            time.sleep(self.latency_s)
        self.steps += 1
        updates: list[SeqUpdate] = []
        advanced = 0
        for seq_id in list(self._seqs):
            seq = self._seqs[seq_id]
            if not seq.aborted and seq.error is None and self.max_batch is not None and advanced >= self.max_batch:
                continue
            advanced += 1
            u = self._advance(seq)
            updates.append(u)
            if u.finished:
                self._remember((*seq.req.input_ids, *seq.generated))
                del self._seqs[seq_id]
        return updates

    # -- internals -----------------------------------------------------------------------
    def _advance(self, seq: _Seq) -> SeqUpdate:
        p = seq.req.params
        u = SeqUpdate(seq.req.seq_id)
        if not seq.reported_prefill:
            seq.reported_prefill = True
            cached = seq.cached
            u.prompt_tokens = len(seq.req.input_ids)
            u.cached_tokens = cached
            u.prefill_computed_tokens = len(seq.req.input_ids) - cached
        if seq.aborted:
            u.finished, u.finish_reason = True, FINISH_ABORT
            return u
        if seq.error is not None:
            u.finished, u.finish_reason, u.error = True, FINISH_ERROR, seq.error
            return u
        if p.max_new_tokens <= 0:
            u.finished, u.finish_reason = True, FINISH_LENGTH
            return u
        if p.top_logprobs > 0:
            u.top_logprobs = []
        for _ in range(self.tokens_per_step):
            tok = seq.out[seq.pos]
            seq.pos += 1
            if tok == EOS_ID and not p.ignore_eos:
                u.finished, u.finish_reason, u.matched_stop = True, FINISH_EOS, EOS_ID
                break
            lp = _logprob(p.seed, seq.req.seq_id, len(seq.generated), tok)
            seq.generated.append(tok)
            u.token_ids.append(tok)
            u.logprobs.append(lp)
            if u.top_logprobs is not None:
                alts = [(tok, lp)] + [(tok + k, lp - k) for k in range(1, p.top_logprobs)]
                u.top_logprobs.append(alts)
            seq.text += self.tokenizer.decode([tok])
            if tok in p.stop_token_ids:
                u.finished, u.finish_reason, u.matched_stop = True, FINISH_STOP_TOKEN, tok
                break
            hit = next((s for s in p.stop_strings if s and seq.text.endswith(s)), None)
            if hit is not None:
                u.finished, u.finish_reason, u.matched_stop = True, FINISH_STOP_STRING, hit
                break
            if len(seq.generated) >= p.max_new_tokens:
                u.finished, u.finish_reason = True, FINISH_LENGTH
                break
            if seq.pos >= len(seq.out):  # ignore_eos and the script ran out: keep the length contract
                u.finished, u.finish_reason = True, FINISH_LENGTH
                break
        return u

    def _cached_prefix(self, ids: Sequence[int]) -> int:
        if not self.prefix_cache:
            return 0
        node, n = self._cache_root, 0
        for tok in ids:
            nxt = node.get(tok)
            if nxt is None:
                break
            node, n = nxt, n + 1
        return n

    def _remember(self, ids: Sequence[int]) -> None:
        if not self.prefix_cache:
            return
        node = self._cache_root
        for tok in ids:
            node = node.setdefault(tok, {})


def scripted_from_environment(**opts: object) -> ScriptedBackend:
    """The hidden `--backend scripted` (CLI and server tests): replies come from env
    variables PARAREASON_SCRIPTED_TABLE (JSON {prompt substring: reply}),
    PARAREASON_SCRIPTED_DEFAULT, PARAREASON_SCRIPTED_LATENCY_S (sleep per step) and
    PARAREASON_SCRIPTED_TOKENS_PER_STEP; load options are ignored (it has no model)."""
    import json
    import os

    env = os.environ
    return ScriptedBackend.from_table(
        json.loads(env.get("PARAREASON_SCRIPTED_TABLE", "{}")),
        default=env.get("PARAREASON_SCRIPTED_DEFAULT", "I think the answer is \\boxed{0}."),
        latency_s=float(env.get("PARAREASON_SCRIPTED_LATENCY_S", "0")),
        tokens_per_step=int(env.get("PARAREASON_SCRIPTED_TOKENS_PER_STEP", "8")))

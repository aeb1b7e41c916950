"""Test doubles for the SGLang client tests (named as such; never used outside tests).

`ByteTestTokenizer` maps UTF-8 bytes to ids 0..255 (EOS = 256), and
`ScriptTestBackend` "generates" a fixed, seed-dependent text one token per step,
honouring max_new_tokens, stop strings, stop token ids, EOS, abort and
top-logprobs, so every client behaviour has an exact expected answer.
"""
from __future__ import annotations

from typing import Sequence

from parareason.backends.base import (
    FINISH_ABORT,
    FINISH_EOS,
    FINISH_LENGTH,
    FINISH_STOP_STRING,
    FINISH_STOP_TOKEN,
    Backend,
    GenerationRequest,
    SeqUpdate,
)
from parareason.server.background import free_port  # noqa: F401 - re-exported to the SGLang tests

EOS = 256


class ByteTestTokenizer:
    name = "test-bytes"
    eos_token_ids = frozenset({EOS})
    vocab_size = 257

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")

    def chat_ids(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        return self.encode(text + ("assistant:" if add_generation_prompt else ""))


class ShiftedByteTestTokenizer(ByteTestTokenizer):
    """A *different* vocabulary (every id shifted by one): must be refused by the client."""

    name = "test-bytes-shifted"

    def encode(self, text: str) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i - 1 for i in ids if 1 <= i <= 256).decode("utf-8", errors="replace")


def script_text(req: GenerationRequest) -> str:
    """What the double 'writes' for a request: depends on its seed and its last context byte."""
    seed = req.params.seed or 0
    return f"<{seed}:{req.input_ids[-1]}> " + "The answer is 42. So the final answer is 42. " * 40


class ScriptTestBackend(Backend):
    """Deterministic test double: one scripted token per sequence per step."""

    name = "script-test"

    def __init__(self, eos_after: int | None = None, tokens_per_step: int = 1) -> None:
        self.tokenizer = ByteTestTokenizer()
        self.eos_after = eos_after  # emit EOS after this many tokens (unless ignore_eos)
        self.tokens_per_step = tokens_per_step
        self._seqs: dict[str, dict] = {}
        self.submitted: list[GenerationRequest] = []

    def submit(self, req: GenerationRequest) -> None:
        self.submitted.append(req)
        script = self.tokenizer.encode(script_text(req))
        self._seqs[req.seq_id] = {"req": req, "script": script, "out": [], "aborted": False, "first": True}

    def abort(self, seq_id: str) -> None:
        if seq_id in self._seqs:
            self._seqs[seq_id]["aborted"] = True

    def has_work(self) -> bool:
        return bool(self._seqs)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        updates = []
        for sid, s in list(self._seqs.items()):
            req: GenerationRequest = s["req"]
            u = SeqUpdate(sid, top_logprobs=[] if req.params.top_logprobs else None)
            if s["first"]:
                s["first"] = False
                u.prompt_tokens = u.prefill_computed_tokens = len(req.input_ids)
            if s["aborted"]:
                u.finished, u.finish_reason = True, FINISH_ABORT
            for _ in range(self.tokens_per_step):
                if u.finished:
                    break
                self._one_token(s, u)
            if u.finished:
                del self._seqs[sid]
            updates.append(u)
        return updates

    def _one_token(self, s: dict, u: SeqUpdate) -> None:
        req: GenerationRequest = s["req"]
        p = req.params
        out: list[int] = s["out"]
        i = len(out)
        eos_now = self.eos_after is not None and i == self.eos_after and not p.ignore_eos
        tok = EOS if eos_now else s["script"][i % len(s["script"])]
        out.append(tok)
        lp = -0.01 * (i % 7 + 1)
        u.token_ids.append(tok)
        u.logprobs.append(lp)
        if u.top_logprobs is not None:
            u.top_logprobs.append([(tok, lp)] + [((tok + j) % 256, lp - j) for j in range(1, p.top_logprobs)])
        text = self.tokenizer.decode(out)
        if eos_now:
            u.finished, u.finish_reason, u.matched_stop = True, FINISH_EOS, EOS
        elif tok in p.stop_token_ids:
            u.finished, u.finish_reason, u.matched_stop = True, FINISH_STOP_TOKEN, tok
        elif any(text.endswith(st) for st in p.stop_strings):
            u.finished, u.finish_reason = True, FINISH_STOP_STRING
            u.matched_stop = next(st for st in p.stop_strings if text.endswith(st))
        elif len(out) >= p.max_new_tokens:
            u.finished, u.finish_reason = True, FINISH_LENGTH


def run_to_end(backend: Backend, limit_s: float = 20.0) -> dict[str, list[SeqUpdate]]:
    """Step until nothing is in flight (bounded: fails the test instead of hanging)."""
    import time

    seen: dict[str, list[SeqUpdate]] = {}
    deadline = time.monotonic() + limit_s
    while backend.has_work():
        assert time.monotonic() < deadline, f"backend still busy after {limit_s}s"
        for u in backend.step(timeout_s=0.05):
            seen.setdefault(u.seq_id, []).append(u)
    return seen


def collect(updates: list[SeqUpdate]) -> dict:
    """Merge one sequence's updates into what the caller ends up knowing."""
    out = {"tokens": [], "logprobs": [], "top": [], "finished": 0, "reason": None, "matched": None,
           "error": None, "prompt_tokens": 0, "cached_tokens": 0, "prefill": 0}
    for u in updates:
        assert out["finished"] == 0, "update after the finish"
        out["tokens"] += u.token_ids
        out["logprobs"] += u.logprobs
        out["top"] += u.top_logprobs or []
        out["prompt_tokens"] += u.prompt_tokens
        out["cached_tokens"] += u.cached_tokens
        out["prefill"] += u.prefill_computed_tokens
        if u.finished:
            out["finished"] += 1
            out["reason"], out["matched"], out["error"] = u.finish_reason, u.matched_stop, u.error
    return out


def wait_until(cond, limit_s: float = 10.0, what: str = "condition") -> None:
    """Bounded wait for tests: fails instead of hanging."""
    import time

    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)



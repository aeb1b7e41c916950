"""Logprobs in OpenAI's two shapes, from token ids and the backend's logprobs.

Chat (`logprobs: true, top_logprobs: k`):
    {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}, ...]}],
     "refusal": null}
Completions (`logprobs: k`, the legacy shape lm-evaluation-harness parses):
    {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{token: logprob, ...}, ...],
     "text_offset": [...]}
where each top_logprobs dict holds the k best alternatives *and* the chosen token
(OpenAI: "up to logprobs+1 elements"), so `max(top.values()) == token_logprob`
exactly when the token was the greedy one (lm-eval's `is_greedy`). A prompt's first
token has no logprob: `None` in both lists, as in OpenAI's echo.

Generated tokens are the chosen sample's own tokens (its main thread: `SampleView.
token_ids / logprobs / top_logprobs`), cut where the returned text ends (at a stop
string). Token strings are decoded one token at a time, keeping special tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

TopList = Sequence[tuple[int, float]]


@dataclass
class TokenLogprobs:
    """Per token: id, logprob (None: none exists, a prompt's first token), alternatives."""

    ids: list[int]
    logprobs: list[float | None]
    tops: list[TopList] | None


def token_decoder(tokenizer: Any) -> Callable[[int], str]:
    decode = getattr(tokenizer, "decode_raw", None) or tokenizer.decode
    return lambda tok: decode([tok])


def cut_to_text(lp: TokenLogprobs, decode: Callable[[int], str], text_len: int) -> TokenLogprobs:
    """Keep the tokens that start inside the first `text_len` characters."""
    offset, keep = 0, 0
    for tok in lp.ids:
        if offset >= text_len:
            break
        offset += len(decode(tok))
        keep += 1
    return TokenLogprobs(lp.ids[:keep], lp.logprobs[:keep], lp.tops[:keep] if lp.tops is not None else None)


def from_sample(sample: Any, k: int) -> TokenLogprobs:
    ids = list(sample.token_ids)
    lps: list[float | None] = list(sample.logprobs)[:len(ids)]
    tops = sample.top_logprobs
    return TokenLogprobs(ids, lps, [list(t)[:k] for t in tops][:len(ids)] if k and tops is not None else None)


def _bytes(s: str) -> list[int]:
    return list(s.encode("utf-8", errors="replace"))


def chat_logprobs(lp: TokenLogprobs, decode: Callable[[int], str]) -> dict[str, Any]:
    content = []
    for i, (tok, value) in enumerate(zip(lp.ids, lp.logprobs)):
        s = decode(tok)
        alts = [{"token": decode(t), "logprob": v, "bytes": _bytes(decode(t))} for t, v in (lp.tops[i] if lp.tops else ())]
        content.append({"token": s, "logprob": value, "bytes": _bytes(s), "top_logprobs": alts})
    return {"content": content, "refusal": None}


def completion_logprobs(lp: TokenLogprobs, decode: Callable[[int], str], start_offset: int = 0) -> dict[str, Any]:
    tokens, offsets, tops = [], [], []
    offset = start_offset
    for i, (tok, value) in enumerate(zip(lp.ids, lp.logprobs)):
        s = decode(tok)
        tokens.append(s)
        offsets.append(offset)
        offset += len(s)
        if value is None:
            tops.append(None)
            continue
        top: dict[str, float] = {}
        for t, v in (lp.tops[i] if lp.tops else ()):
            top.setdefault(decode(t), v)  # best first: two ids with one string keep the better
        top[s] = max(top.get(s, value), value)  # the chosen token is always listed
        tops.append(top)
    return {"tokens": tokens, "token_logprobs": list(lp.logprobs), "top_logprobs": tops, "text_offset": offsets}


def concat(a: TokenLogprobs, b: TokenLogprobs) -> TokenLogprobs:
    tops = None
    if a.tops is not None or b.tops is not None:
        tops = list(a.tops or [[]] * len(a.ids)) + list(b.tops or [[]] * len(b.ids))
    return TokenLogprobs(a.ids + b.ids, a.logprobs + b.logprobs, tops)

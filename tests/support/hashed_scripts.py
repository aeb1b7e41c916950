"""Scripted "models" for the runtime property tests: each reply's behaviour (plain text, an
answer, a branch, unclosed markup, a backend error, a long ramble, ...) and size are picked
from a hash of the context and the sample's seed, so every run is deterministic while
hypothesis draws the behaviours. Each test names what a behaviour writes in its dialect."""
from __future__ import annotations

import zlib
from typing import Callable, Mapping, Sequence

from parareason.backends.scripted import ScriptContext

# (size, protocol) -> the reply, or None where the behaviour means nothing in that protocol
Reply = Callable[[int, str], "str | None"]
LONG = "l" * 120  # "long", and any behaviour without a reply: a ramble without markup


def hashed_script(behaviours: Sequence[str], sizes: Sequence[int], protocol: str,
                  replies: Mapping[str, Reply]) -> Callable[[ScriptContext], str]:
    def script(ctx: ScriptContext) -> str:
        h = zlib.crc32(ctx.text.encode()) ^ (ctx.params.seed or 0)
        b, k = behaviours[h % len(behaviours)], sizes[(h >> 8) % len(sizes)]
        if b == "error":
            raise RuntimeError("simulated backend fault")
        if b == "text":
            return "t" * (3 * k)
        reply = replies.get(b)
        out = reply(k, protocol) if reply is not None else None
        return LONG if out is None else out
    return script

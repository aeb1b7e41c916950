"""Stop strings, as OpenAI clients expect them: the returned text never contains one.

Backends end a sequence when its text reaches a stop string, and keep that string in
the sequence (the runtime's samples and the policy see it). What the client gets is
cut before the first occurrence of any stop string. A stream cannot take text back,
so while the text ends with what could still grow into a stop string (a proper
prefix of one), that tail is held back until the next tokens decide it.
"""
from __future__ import annotations

from typing import Sequence


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop string."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return text[:min(hits)] if hits else text


def sendable(text: str, stops: Sequence[str]) -> str:
    """The part of a growing `text` that can be streamed now: cut at a stop string
    already present, and without a tail that may still become one."""
    cut = cut_at_stop(text, stops)
    if len(cut) < len(text):
        return cut
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), hold, -1):  # longest proper prefix of s ending the text
            if text.endswith(s[:k]):
                hold = k
                break
    return text[:len(text) - hold]

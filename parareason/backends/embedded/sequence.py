"""State of one sequence inside the engine, and its stop conditions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence as Seq

import torch

from parareason.backends.base import (
    FINISH_EOS,
    FINISH_LENGTH,
    FINISH_STOP_STRING,
    FINISH_STOP_TOKEN,
    GenerationRequest,
)


@dataclass(eq=False)
class Sequence:
    req: GenerationRequest
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)  # context + generated so far
    slots: list[int] = field(default_factory=list)  # KV slots of tokens[:len(slots)]
    # Next-token logits after exactly tokens[:len(slots)]; set by prefill / decode.
    logits: torch.Tensor | None = None
    generated: list[int] = field(default_factory=list)
    cached_tokens: int = 0
    prefill_computed_tokens: int = 0
    usage_reported: bool = False
    pos_shift: int = 0  # position = slot index - pos_shift (a ParaThinker summary: parathinker_native.py)
    seg: int = 0  # segment id of new tokens (ParaThinker path k: k)
    # Leading slots read as a prefix shared with other rows (attention.py): the prompt less
    # its last token, which every sibling of this prompt holds in the same slots. Fixed at
    # prefill from the prompt alone, so a row's arithmetic never depends on its batch mates.
    shared_prefix: int = 0
    slot_cache: Any = field(default=None, repr=False)  # decode_batch.SlotTensor of `slots`

    @property
    def seq_id(self) -> str:
        return self.req.seq_id


@dataclass(frozen=True)
class StopCheck:
    reason: str
    matched: str | int | None


def check_stop(seq: Sequence, eos_ids: frozenset[int], decode_raw: Callable[[Seq[int]], str],
               max_positions: int) -> StopCheck | None:
    """Whether the token just appended to `seq` ends it (checked in this order)."""
    p = seq.req.params
    tok = seq.generated[-1]
    if tok in p.stop_token_ids:
        return StopCheck(FINISH_STOP_TOKEN, tok)
    if tok in eos_ids and not p.ignore_eos:
        return StopCheck(FINISH_EOS, tok)
    if p.stop_strings:
        # Decode a tail window long enough to hold any stop string ending at this token
        # (a token is at least one byte; a character at most 4). Earlier text was
        # already checked at earlier steps, so a match here ends at the newest token.
        window = 4 * max(len(s) for s in p.stop_strings) + 8
        text = decode_raw(seq.generated[-window:])
        for s in p.stop_strings:
            if s and s in text:
                return StopCheck(FINISH_STOP_STRING, s)
    if len(seq.generated) >= p.max_new_tokens:
        return StopCheck(FINISH_LENGTH, None)
    if len(seq.tokens) >= max_positions:  # no position left for another token
        return StopCheck(FINISH_LENGTH, None)
    return None

"""ParaThinker's native inference on the embedded engine: position restart, block attention,
the paths' KV reused by the summary, per-path segment embeddings.

Matches the ParaThinker engine, github.com/LeslieKid/vllm-parathinker
@ d30de3c71c49e08ea0944ba6586788fdf53ea4e6 (`vllm/engine/output_processor/single_step.py`,
`vllm/sequence.py` `prepare_merged_sequence`, `vllm/model_executor/models/qwen2.py`
`seg_embeddings`), and the layout its checkpoints were trained on
(github.com/MobileLLM/ParaThinker `train/custom_data_collator.py`):

* path k = prompt + `<think{k}>` + its tokens: positions P, P+1, ... after the P prompt
  tokens (every path restarts there); it attends the prompt and itself. A path is its own
  sequence here, so that is the engine's ordinary causal attention over its slots.
* summary = prompt + every path's tokens + `<summary>` + ...: it attends all of them; its
  positions continue after the longest path (P + longest + i). The paths' KV is reused
  from the path sequences (live, or kept in the prefix LRU): only the summary's own
  tokens are computed (a path span no longer cached is recomputed in its own layout).
* the checkpoint's `self_attn.seg_embeddings` are added to keys and values before RoPE:
  segment k for path k's tokens, 0 for the prompt and the summary (model.py applies them).

The layout is read off the token ids, as the reference engine does; it applies when the
tokenizer has `<think1>`..`<think8>` and `<summary>` as single ids (a ParaThinker
checkpoint) or when the engine is given the ids (tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from parareason.backends.embedded.prefix_cache import longest_prefix

if TYPE_CHECKING:  # the engine is not imported here: it imports this module
    from parareason.backends.embedded.sequence import Sequence as EngineSequence

FEATURE = "parathinker_native"


@dataclass(frozen=True)
class ParaThinkerIds:
    opens: tuple[int, ...]  # <think1>..<think8>
    summary: int  # <summary>

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> "ParaThinkerIds | None":
        ids = [tokenizer.encode(f"<think{k}>") for k in range(1, 9)] + [tokenizer.encode("<summary>")]
        if not all(len(x) == 1 for x in ids):
            return None
        return cls(tuple(x[0] for x in ids[:8]), ids[8][0])


@dataclass(frozen=True)
class Layout:
    positions: list[int]  # per context token
    segs: list[int]  # per context token
    prompt_len: int
    spans: list[tuple[int, int]]  # [start, end) of each path in the context
    summary_at: int | None  # index of <summary>; None: a path

    @property
    def shift(self) -> int:
        """Tokens at or after the last layout region sit at position index - shift."""
        if self.summary_at is None:
            return 0
        return self.summary_at - self.prompt_len - max(e - s for s, e in self.spans)

    def region(self, i: int) -> tuple[int, int]:
        """The [start, end) of the region holding context index i."""
        if i < self.prompt_len:
            return 0, self.prompt_len
        for s, e in self.spans:
            if s <= i < e:
                return s, e
        return self.summary_at or 0, len(self.positions)

    def mask(self, q_from: int, q_to: int) -> torch.Tensor:
        """[Q, q_to] bool: which context tokens each of tokens q_from..q_to-1 attends."""
        rows = []
        for q in range(q_from, q_to):
            s, _ = self.region(q)
            row = torch.zeros(q_to, dtype=torch.bool)
            row[:q + 1] = True
            if self.prompt_len <= q and (self.summary_at is None or q < self.summary_at):
                row[self.prompt_len:s] = False  # a path sees the prompt and itself only
            rows.append(row)
        return torch.stack(rows)


def layout(ids: Sequence[int], pt: ParaThinkerIds) -> Layout | None:
    """The ParaThinker layout of a context, or None when it is not a path or a summary."""
    opens = {tok: k for k, tok in enumerate(pt.opens, 1)}
    first = next((i for i, t in enumerate(ids) if t in opens), None)
    if first is None:
        return None
    summary_at = next((i for i in range(first, len(ids)) if ids[i] == pt.summary), None)
    end = summary_at if summary_at is not None else len(ids)
    starts = [i for i in range(first, end) if ids[i] in opens]
    if summary_at is None and len(starts) != 1:
        return None  # several paths and no summary: not a ParaThinker context
    spans = list(zip(starts, starts[1:] + [end]))
    positions, segs = list(range(first)), [0] * first
    for s, e in spans:
        positions += range(first, first + e - s)
        segs += [opens[ids[s]]] * (e - s)
    if summary_at is not None:
        longest = max(e - s for s, e in spans)
        positions += range(first + longest, first + longest + len(ids) - summary_at)
        segs += [0] * (len(ids) - summary_at)
    return Layout(positions, segs, first, spans, summary_at)


def prefill(engine: Any, seq: "EngineSequence", lay: Layout) -> None:  # engine: the TransformersEngine
    """Fill `seq.slots` region by region, reusing KV of equal regions, computing the rest."""
    ids, pool = seq.tokens, engine.pool
    sources = [*engine.running.values(), *engine.prefix_cache]
    slots: list[int] = []
    seq.slots = slots  # ours alone; on an error the engine releases what it holds
    reused = computed = 0
    regions = [(0, lay.prompt_len), *lay.spans] + ([(lay.summary_at, len(ids))] if lay.summary_at is not None else [])
    for start, end in regions:
        # An equal region elsewhere has equal KV (same tokens, positions and segments): the
        # prompt and the summary tail are matched with everything before them, a path with
        # the prompt before it (a path's own sequence holds exactly that).
        base = lay.prompt_len if start in {s for s, _ in lay.spans} else start
        key = list(ids[:lay.prompt_len]) + list(ids[start:end]) if base != start else list(ids[:end])
        match = longest_prefix(key, sources)
        have = max(0, min(match.length - base, end - start))
        if end == len(ids):
            have = min(have, end - start - 1)  # the last token must run: it gives the logits
        if have:
            src = match.source.slots[base:base + have]
            pool.retain(src)
            slots += src
            reused += have
        if start + have < end:
            new = pool.alloc(end - start - have)
            slots += new
            q0, q1 = start + have, end
            pos = torch.tensor([lay.positions[q0:q1]])
            seq.logits = engine.model.forward(
                torch.tensor([ids[q0:q1]]), pos, pool, torch.tensor([new]), torch.tensor([slots]),
                lay.mask(q0, q1)[None, None], torch.tensor([q1 - q0 - 1]),
                seg_ids=torch.tensor([lay.segs[q0:q1]]))[0]
            computed += q1 - q0
            engine.stats.prefill_forwards += 1
            engine.stats.prefill_tokens += q1 - q0
    seq.cached_tokens, seq.prefill_computed_tokens = reused, computed
    seq.pos_shift, seq.seg = lay.shift, lay.segs[-1]

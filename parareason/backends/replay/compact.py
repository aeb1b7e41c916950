"""Shrink a trace file for committing: rounded logprobs, compressed, optionally no ids.

A recording of 128 questions x 16 traces with the top-20 alternatives is hundreds of
MB of JSON, mostly alternatives' ids and 17-digit logprobs. What replays need is less:
the generated token ids, each token's logprob, and the alternatives' logprob values
(DeepConf's token confidence is their mean; no policy reads an alternative's id). So
`compact_trace_file` rounds logprobs (default 3 decimals for the sampled token, 2 for
alternatives: a confidence moves by < 0.005), can drop the alternatives' ids, and
writes xz. Everything else (text, answers, timings, tokenizer calls) is kept, so
`replay` reads the result as it reads the original (`load_trace_file`).
"""
from __future__ import annotations

import json
import lzma
from dataclasses import dataclass
from pathlib import Path

from parareason.backends.replay.tracefile import load_trace_file


@dataclass(frozen=True)
class CompactOptions:
    logprob_decimals: int = 3
    top_decimals: int = 2
    keep_top_ids: bool = False  # ids of the alternatives: no policy reads them


def compact_question(d: dict, opts: CompactOptions) -> dict:
    """A trace line (`RecordedQuestion.to_dict()`) with rounded (and id-less) logprobs."""
    for ctx in d["contexts"]:
        for t in ctx["traces"]:
            t["logprobs"] = [round(x, opts.logprob_decimals) for x in t["logprobs"]]
            if t.get("top_logprobs") is not None:
                t["top_logprobs"] = [
                    [[tid, round(lp, opts.top_decimals)] if opts.keep_top_ids else round(lp, opts.top_decimals)
                     for tid, lp in pos] for pos in t["top_logprobs"]]
    return d


def compact_trace_file(src: str | Path, dst: str | Path, opts: CompactOptions = CompactOptions()) -> int:
    """Write `src`'s complete questions, in dataset order, to `dst` (xz); returns their count."""
    dst = Path(dst)
    if dst.suffix != ".xz":
        raise ValueError(f"{dst}: the compact file is xz-compressed; name it *.xz")
    questions = load_trace_file(src)
    tmp = dst.with_suffix(".xz.tmp")
    with lzma.open(tmp, "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
        for q in questions:
            f.write(json.dumps(compact_question(q.to_dict(), opts), ensure_ascii=False,
                               separators=(",", ":")) + "\n")
    tmp.replace(dst)  # atomic: a reader never sees half an archive
    return len(questions)

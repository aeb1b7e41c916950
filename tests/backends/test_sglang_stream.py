"""Unit tests of the SGLang stream parsing, finish mapping and routing (no server)."""
from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from parareason.backends.http.routing import WorkerPool
from parareason.backends.http.sse import SSEParser
from parareason.backends.sglang.stream import ChunkDecoder, map_finish, parse_payload


def _events(chunks: list[dict]) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def _chunks(tokens: list[int], cuts: list[int], cumulative: bool, top: bool) -> list[dict]:
    """Render a token stream the way SGLang does, in either streaming mode."""
    bounds = sorted({c for c in cuts if 0 < c < len(tokens)} | {len(tokens)})
    chunks, prev = [], 0
    for b in bounds:
        lo = 0 if cumulative else prev
        meta = {
            "id": "r", "prompt_tokens": 5, "cached_tokens": 2, "completion_tokens": b,
            "finish_reason": {"type": "length", "length": b} if b == len(tokens) else None,
            "output_token_logprobs": [[-i / 10, t, None] for i, t in enumerate(tokens[lo:b], start=lo)],
        }
        if top:
            meta["output_top_logprobs"] = [[[-i / 10, t, None], [-9.0, 7, None]] for i, t in enumerate(tokens[lo:b], start=lo)]
        chunks.append({"text": "", "output_ids": tokens[lo:b], "meta_info": meta})
        prev = b
    return chunks


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.lists(st.integers(0, 50), min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=10),
    split_at=st.lists(st.integers(0, 4000), max_size=8),
    cumulative=st.booleans(),
    mode=st.sampled_from(["auto", "cumulative", "incremental"]),
    top=st.booleans(),
)
def test_any_chunking_and_mode_yields_the_exact_tokens(tokens, cuts, split_at, cumulative, mode, top):
    if mode != "auto" and (mode == "cumulative") != cumulative:
        mode = "auto"  # a fixed mode must match the server's; auto must handle both
    wire = _events(_chunks(tokens, cuts, cumulative, top))
    parser, dec = SSEParser(), ChunkDecoder(mode)
    got, lps, tops, finish, done = [], [], [], None, False
    pieces = [wire[a:b] for a, b in zip([0, *sorted(split_at)], [*sorted(split_at), len(wire)])]
    for piece in pieces:  # the network may split anywhere, even inside "data:"
        for payload in parser.feed(piece):
            chunk = parse_payload(payload)
            if chunk is None:
                done = True
                continue
            d = dec.decode(chunk)
            got += d.token_ids
            lps += d.logprobs
            tops += d.top_logprobs
            finish = d.finish or finish
            assert d.prompt_tokens == 5 and d.cached_tokens == 2
    assert done and got == tokens
    assert lps == [-i / 10 for i in range(len(tokens))]
    if top:
        assert tops == [[(t, -i / 10), (7, -9.0)] for i, t in enumerate(tokens)]
    assert finish == {"type": "length", "length": len(tokens)}


def test_error_chunk_and_missing_logprobs():
    dec = ChunkDecoder()
    assert dec.decode({"error": {"message": "prompt too long"}}).error == "prompt too long"
    d = dec.decode({"output_ids": [1, 2], "meta_info": {"completion_tokens": 2, "finish_reason": None}})
    assert d.token_ids == [1, 2] and len(d.logprobs) == 2 and all(math.isnan(x) for x in d.logprobs)


def test_abort_in_waiting_queue_chunk_adds_no_token():
    # SGLang repeats "the last id" in this chunk although nothing was generated.
    dec = ChunkDecoder()
    d = dec.decode({"output_ids": [5], "meta_info": {"completion_tokens": 0,
                                                      "finish_reason": {"type": "abort", "message": "Abort in waiting queue"}}})
    assert d.token_ids == [] and d.finish["type"] == "abort" and d.prompt_tokens is None


def test_map_finish():
    assert map_finish({"type": "length", "length": 9}, (), False) == ("length", None, None)
    assert map_finish({"type": "stop", "matched": 151645}, (), False) == ("eos", 151645, None)
    assert map_finish({"type": "stop", "matched": 7}, (7,), False) == ("stop_token", 7, None)
    assert map_finish({"type": "stop", "matched": "</answer>"}, (), False) == ("stop_string", "</answer>", None)
    assert map_finish({"type": "abort", "message": "Aborted"}, (), True) == ("abort", None, None)
    reason, _, err = map_finish({"type": "abort", "message": "OOM", "status_code": 500}, (), False)
    assert reason == "error" and "OOM" in err


def test_routing_is_stable_sticky_and_fails_over_only_dead_workers_keys():
    urls = [f"http://w{i}" for i in range(4)]
    now = [0.0]
    pool = WorkerPool(urls, dead_cooldown_s=10, clock=lambda: now[0])
    keys = [f"req-{i}" for i in range(200)]
    first = {k: pool.pick(k) for k in keys}
    assert set(first.values()) == set(urls)  # keys spread over every worker
    assert first == {k: WorkerPool(urls).pick(k) for k in keys}  # stable across instances/processes
    dead = urls[1]
    pool.mark_dead(dead)
    moved = {k: pool.pick(k) for k in keys}
    for k in keys:
        if first[k] == dead:
            assert moved[k] == pool.ranked(k)[1]  # to its next-ranked worker
        else:
            assert moved[k] == first[k]  # everyone else stays put
    now[0] = 100.0  # the dead worker is back: keys that moved stay where their prefix now lives
    assert {k: pool.pick(k) for k in keys} == moved

"""Contract of SGLangBackend against the SGLang stand-in (real HTTP on 127.0.0.1).

The stand-in is backed by `ScriptTestBackend` (a deterministic test double), so
every answer is exact: the client must deliver what the backend produced, in
order, with SGLang's own wire format in between.
"""
from __future__ import annotations

import pytest

from parareason.backends.base import BackendError, GenerationRequest, SamplingParams
from parareason.backends.sglang import SGLangBackend, TokenizerMismatch, load_sglang_backend
from parareason.testing.sglang_standin import SGLangStandin
from tests.support.sglang_doubles import (
    EOS,
    ByteTestTokenizer,
    ScriptTestBackend,
    ShiftedByteTestTokenizer,
    collect,
    run_to_end,
    script_text,
    wait_until,
)

TOK = ByteTestTokenizer()
PROMPT = tuple(TOK.encode("Question: what is 6*7? Think step by step.\n"))


@pytest.fixture
def server():
    srv = SGLangStandin(ScriptTestBackend()).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    b = load_sglang_backend(server.url, TOK, stall_timeout_s=10, request_timeout_s=30)
    yield b
    b.close()


def req(seq_id: str, ids=PROMPT, key: str | None = "q1", **params) -> GenerationRequest:
    return GenerationRequest(seq_id, tuple(ids), SamplingParams(**params), affinity_key=key)


def expected_tokens(r: GenerationRequest, n: int) -> list[int]:
    return TOK.encode(script_text(r))[:n]


@pytest.mark.parametrize("incremental", [False, True], ids=["cumulative-chunks", "delta-chunks"])
def test_streams_tokens_in_order_with_logprobs(incremental):
    with SGLangStandin(ScriptTestBackend(tokens_per_step=3), incremental_streaming_output=incremental,
                       step_interval_s=0.01) as srv, \
            load_sglang_backend(srv.url, TOK) as b:
        rs = [req(f"t{i}", seed=i, max_new_tokens=25 + i, top_logprobs=3) for i in range(4)]
        for r in rs:
            b.submit(r)
        seen = run_to_end(b)
        assert sorted(seen) == [r.seq_id for r in rs]
        for r in rs:
            c = collect(seen[r.seq_id])
            assert c["finished"] == 1 and c["reason"] == "length" and c["error"] is None
            assert c["tokens"] == expected_tokens(r, r.params.max_new_tokens)
            assert len(seen[r.seq_id]) > 2  # really streamed, not one final blob
            # logprobs: one per token; top_logprobs: k per position, best first, sampled first here
            assert c["logprobs"] == [-0.01 * (i % 7 + 1) for i in range(len(c["tokens"]))]
            assert len(c["top"]) == len(c["tokens"]) and all(len(p) == 3 for p in c["top"])
            assert [p[0][0] for p in c["top"]] == c["tokens"]
            assert all(p[0][1] >= p[1][1] >= p[2][1] for p in c["top"])
        assert not b.has_work() and b.step(0.01) == []


def test_request_body_is_native_sglang(server, client):
    client.submit(req("body", seed=11, temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=4,
                      stop_strings=("###",), stop_token_ids=(3,), top_logprobs=2))
    run_to_end(client)
    body = server.generate_requests[-1]
    assert body["input_ids"] == list(PROMPT) and "text" not in body
    assert body["rid"].startswith("body.") and body["stream"] is True
    assert body["return_logprob"] is True and body["top_logprobs_num"] == 2 and body["logprob_start_len"] == -1
    sp = body["sampling_params"]
    assert sp["temperature"] == 0.7 and sp["top_p"] == 0.9 and sp["top_k"] == -1
    assert sp["max_new_tokens"] == 4 and sp["stop"] == ["###"] and sp["stop_token_ids"] == [3]
    assert sp["sampling_seed"] == 11 and sp["ignore_eos"] is False and sp["repetition_penalty"] == 1.0


def test_no_top_logprobs_when_not_asked(client):
    client.submit(req("plain", max_new_tokens=5))
    c = collect(run_to_end(client)["plain"])
    assert len(c["tokens"]) == 5 and len(c["logprobs"]) == 5
    assert all(u.top_logprobs is None for u in run_to_end(client).get("plain", []))


def test_finish_reasons_stop_string_stop_token_eos_length(server, client):
    r_text = req("stopstr", max_new_tokens=200, stop_strings=("answer is",))
    r_tok = req("stoptok", max_new_tokens=200, stop_token_ids=(ord("4"),))
    r_len = req("len", max_new_tokens=3)
    for r in (r_text, r_tok, r_len):
        client.submit(r)
    seen = {k: collect(v) for k, v in run_to_end(client).items()}
    assert seen["stopstr"]["reason"] == "stop_string" and seen["stopstr"]["matched"] == "answer is"
    assert TOK.decode(seen["stopstr"]["tokens"]).endswith("The answer is")
    assert seen["stoptok"]["reason"] == "stop_token" and seen["stoptok"]["matched"] == ord("4")
    assert seen["stoptok"]["tokens"][-1] == ord("4")
    assert seen["len"]["reason"] == "length" and len(seen["len"]["tokens"]) == 3
    with SGLangStandin(ScriptTestBackend(eos_after=6)) as srv, load_sglang_backend(srv.url, TOK) as b:
        b.submit(req("eos", max_new_tokens=50))
        b.submit(req("noeos", max_new_tokens=9, ignore_eos=True))
        got = {k: collect(v) for k, v in run_to_end(b).items()}
    assert got["eos"]["reason"] == "eos" and got["eos"]["matched"] == EOS and got["eos"]["tokens"][-1] == EOS
    assert got["noeos"]["reason"] == "length" and EOS not in got["noeos"]["tokens"]


def test_abort_stops_generation_on_the_server():
    with SGLangStandin(ScriptTestBackend(), step_interval_s=0.02) as srv, load_sglang_backend(srv.url, TOK) as b:
        b.submit(req("victim", max_new_tokens=10_000))
        b.submit(req("victim0", max_new_tokens=60))  # "victim" is a prefix of this id: must survive
        before: dict[str, list] = {"victim": [], "victim0": []}
        while sum(len(u.token_ids) for u in before["victim"]) < 5:
            for u in b.step(0.5):
                before[u.seq_id].append(u)
        b.abort("victim")
        b.abort("victim")  # twice: a no-op
        b.abort("never-submitted")  # unknown: a no-op
        seen = run_to_end(b)
        assert [u.finish_reason for u in seen["victim"]] == ["abort"]
        assert seen["victim"][0].token_ids == []  # nothing after abort()
        assert all(not u.finished for u in before["victim"])
        seen["victim0"] = before["victim0"] + seen.get("victim0", [])
        survivor = collect(seen["victim0"])
        assert survivor["reason"] == "length" and len(survivor["tokens"]) == 60
        # The server saw /abort_request for exactly that request and stopped generating.
        wait_until(lambda: any(r.startswith("victim.") for r in srv.aborted_rids), what="server-side abort")
        assert not any(r.startswith("victim0.") for r in srv.aborted_rids)
        wait_until(lambda: not srv.backend.has_work(), what="server backend idle")
        assert b.step(0.01) == []


def test_abort_before_first_token():
    with SGLangStandin(ScriptTestBackend(), step_interval_s=0.05) as srv, load_sglang_backend(srv.url, TOK) as b:
        b.submit(req("early", max_new_tokens=1000))
        b.abort("early")
        seen = run_to_end(b)
        assert [(u.finished, u.finish_reason, u.token_ids) for u in seen["early"]] == [(True, "abort", [])]
        wait_until(lambda: not srv.backend.has_work() and not srv.live, what="server idle after early abort")


def test_cached_tokens_across_siblings(server, client):
    prefix = list(PROMPT) + TOK.encode("Let me think. ")
    client.submit(req("root", ids=prefix, max_new_tokens=4))
    root = collect(run_to_end(client)["root"])
    assert root["prompt_tokens"] == len(prefix) and root["cached_tokens"] == 0 and root["prefill"] == len(prefix)
    sibs = [req(f"sib{i}", ids=prefix + TOK.encode(f"Branch {i}: "), max_new_tokens=4) for i in range(3)]
    for r in sibs:
        client.submit(r)
    seen = run_to_end(client)
    for r in sibs:
        c = collect(seen[r.seq_id])
        assert c["prompt_tokens"] == len(r.input_ids)
        assert c["cached_tokens"] >= len(prefix)  # the shared prefix came from the radix cache
        assert c["cached_tokens"] + c["prefill"] == c["prompt_tokens"]
        assert c["cached_tokens"] <= c["prompt_tokens"] - 1
        assert sum(u.prompt_tokens > 0 for u in seen[r.seq_id]) == 1  # accounting reported once


def test_tokenizer_mismatch_is_refused(server):
    with pytest.raises(TokenizerMismatch, match="tokenizer mismatch"):
        load_sglang_backend(server.url, ShiftedByteTestTokenizer())
    assert issubclass(TokenizerMismatch, BackendError)


def test_tokenizer_checked_through_detokenize_when_tokenize_is_missing():
    with SGLangStandin(ScriptTestBackend(), tokenize_endpoints=False) as srv:
        with pytest.raises(TokenizerMismatch, match="decodes our ids"):
            load_sglang_backend(srv.url, ShiftedByteTestTokenizer())
        load_sglang_backend(srv.url, TOK).close()  # the right tokenizer passes


def test_duplicate_live_seq_id_rejected_and_closed_backend_refuses(client):
    client.submit(req("dup", max_new_tokens=3))
    with pytest.raises(ValueError):
        client.submit(req("dup", max_new_tokens=3))
    run_to_end(client)
    client.submit(req("dup", max_new_tokens=2))  # reusable once finished
    assert len(collect(run_to_end(client)["dup"])["tokens"]) == 2
    client.close()
    with pytest.raises(BackendError):
        client.submit(req("late"))


def test_empty_input_fails_the_sequence_not_the_backend(client):
    client.submit(GenerationRequest("empty", (), SamplingParams()))
    c = collect(run_to_end(client)["empty"])
    assert c["reason"] == "error" and "empty" in c["error"]


def test_is_a_backend_and_does_not_import_sglang():
    import sys

    from parareason.backends.base import Backend

    assert issubclass(SGLangBackend, Backend)
    assert "sglang" not in sys.modules


def test_seed_can_be_withheld_for_older_servers(server):
    with load_sglang_backend(server.url, TOK, send_seed=False) as b:
        b.submit(req("noseed", seed=5, max_new_tokens=2))
        run_to_end(b)
    assert "sampling_seed" not in server.generate_requests[-1]["sampling_params"]

"""RecordingBackend: passes calls through, keeps tokens/logprobs/timings per sample,
stitches continuations, and logs tokenizer calls for a model-free replay."""
from __future__ import annotations

from parareason.backends.replay.recording import RecordingBackend
from parareason.backends.base import GenerationRequest, SamplingParams
from parareason.backends.scripted import ScriptedBackend


def drain(b):
    got = {}
    while b.has_work():
        for u in b.step():
            got.setdefault(u.seq_id, []).extend(u.token_ids)
    return got


FULL = "The answer is \\boxed{7}."


def test_records_samples_and_stitches_a_continuation():
    # like a model, the double continues from what the context already says
    rec = RecordingBackend(ScriptedBackend(lambda ctx: FULL[len(ctx.assistant_text):], tokens_per_step=4))
    ctx = rec.tokenizer.chat_ids([{"role": "user", "content": "3+4?"}])
    rec.submit(GenerationRequest("a", tuple(ctx), SamplingParams(max_new_tokens=6, top_logprobs=2)))
    rec.submit(GenerationRequest("b", tuple(ctx), SamplingParams()))
    first = drain(rec)
    # "a" was cut by max_new_tokens; its continuation is one recorded sample, not two
    rec.submit(GenerationRequest("a2", tuple(ctx) + tuple(first["a"]), SamplingParams(top_logprobs=2)))
    drain(rec)
    contexts, pieces, calls = rec.take(answers=True)
    assert len(contexts) == 1 and contexts[0].input_ids == ctx
    a, b = contexts[0].traces
    assert a.text == b.text == "The answer is \\boxed{7}."
    assert a.token_ids == b.token_ids and len(a.logprobs) == len(a.token_ids)
    assert a.top_logprobs is not None and len(a.top_logprobs) == len(a.token_ids)
    assert b.top_logprobs is None  # not asked for
    assert a.finish_reason == b.finish_reason == "eos" and a.answer == "7"
    assert a.elapsed_s is not None and a.t_first_token_s is not None
    assert "".join(pieces[t] for t in a.token_ids) == a.text
    assert calls["chat"] == [([{"role": "user", "content": "3+4?"}], True, ctx)]
    assert rec.take() == ([], {}, {"chat": [], "encode": []})  # take() resets the log


def test_a_keyed_take_hands_over_one_request_and_keeps_the_rest():
    rec = RecordingBackend(ScriptedBackend(lambda ctx: FULL[len(ctx.assistant_text):], tokens_per_step=4))
    ctx_a = rec.tokenizer.chat_ids([{"role": "user", "content": "3+4?"}])
    ctx_b = rec.tokenizer.chat_ids([{"role": "user", "content": "5+2?"}])
    rec.submit(GenerationRequest("a", tuple(ctx_a), SamplingParams(), affinity_key="qa"))
    rec.submit(GenerationRequest("b", tuple(ctx_b), SamplingParams(), affinity_key="qb"))
    drain(rec)
    contexts, _, calls = rec.take(key="qa", prompt="3+4?")
    assert [c.input_ids for c in contexts] == [ctx_a] and len(contexts[0].traces) == 1
    assert [m for m, _, _ in calls["chat"]] == [[{"role": "user", "content": "3+4?"}]]
    contexts, _, calls = rec.take(key="qb", prompt="5+2?")
    assert [c.input_ids for c in contexts] == [ctx_b]
    assert [m for m, _, _ in calls["chat"]] == [[{"role": "user", "content": "5+2?"}]]
    assert rec.take() == ([], {}, {"chat": [], "encode": []})


def test_a_trace_cut_by_its_cap_keeps_only_a_stated_answer():
    rec = RecordingBackend(ScriptedBackend(lambda ctx: "3 + 4 gives 7 and then 12 more", tokens_per_step=4))
    ctx = rec.tokenizer.chat_ids([{"role": "user", "content": "3+4?"}])
    rec.submit(GenerationRequest("cut", tuple(ctx), SamplingParams(max_new_tokens=5)))
    drain(rec)
    (context,), _, _ = rec.take(answers=True)
    (trace,) = context.traces
    assert trace.finish_reason == "length" and trace.answer is None  # no stray last number votes


def test_states_the_inner_backends_context_length():
    class Limited(ScriptedBackend):
        @property
        def context_length(self) -> int | None:
            return 77

    assert RecordingBackend(Limited(lambda ctx: FULL)).context_length == 77
    assert RecordingBackend(ScriptedBackend(lambda ctx: FULL)).context_length is None  # states none

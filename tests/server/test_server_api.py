"""The OpenAI-compatible endpoints through the official openai client (scripted backend)."""
from __future__ import annotations

import pytest

from parareason.grading import extract_answer
from parareason.policies import make_policy
from tests.support.server_harness import MODEL, client, scripted_server

QUESTION = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(scope="module")
def server():
    with scripted_server(tokens_per_step=4) as (url, backend, app):
        yield url, backend, app


def _detail(resp):
    return resp.model_extra["parareason"]


def _check_consistent(resp, text: str) -> dict:
    d = _detail(resp)
    assert d["error"] is None and d["omitted_threads"] == {}  # no refused thread left unlisted
    assert resp.usage.completion_tokens == sum(t["tokens"] for t in d["threads"]) == d["usage"]["generated_tokens"]
    assert resp.usage.prompt_tokens == d["usage"]["prompt_tokens"] > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert extract_answer(text) == d["answer"]  # the content is a sample that gave the chosen answer
    return d


def test_chat_completion_returns_chosen_sample_votes_and_all_thread_usage(server):
    url, _, _ = server
    r = client(url).chat.completions.create(model=MODEL, messages=QUESTION, seed=3)
    assert r.object == "chat.completion" and r.model == MODEL and r.id.startswith("chatcmpl-")
    [choice] = r.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    d = _check_consistent(r, choice.message.content)
    assert choice.message.content.startswith("Let me compute 2+2")
    assert d["policy"] == "self_consistency" and d["protocol"] == "plain" and d["n"] == 3
    assert len(d["threads"]) == 3 and all(t["status"] == "finished" for t in d["threads"])
    assert sum(v["count"] for v in d["votes"]) == 3
    assert d["usage"]["cached_tokens"] > 0  # the 3 samples share the prompt prefix


def test_completion_endpoint(server):
    url, _, _ = server
    r = client(url).completions.create(model=MODEL, prompt="What is 3+3?", seed=5, max_tokens=200)
    assert r.object == "text_completion" and r.choices[0].finish_reason == "stop"
    _check_consistent(r, r.choices[0].text)
    assert "3+3" in r.choices[0].text


def test_max_tokens_caps_each_sample_and_reports_length(server):
    url, _, _ = server
    r = client(url).chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=10,
                                            extra_body={"parareason": {"n": 2}})
    d = _detail(r)
    assert all(t["tokens"] <= 10 for t in d["threads"]) and r.usage.completion_tokens <= 20
    assert r.choices[0].finish_reason == "length"


def test_chat_stream_single_sample_is_live_and_equals_non_stream(server):
    url, backend, _ = server
    c = client(url)
    body = dict(model=MODEL, messages=QUESTION, seed=11, extra_body={"parareason": {"n": 1}})
    full = c.chat.completions.create(**body).choices[0].message.content
    chunks = list(c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **body))
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    pieces = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert len(pieces) > 5  # streamed as produced (4 chars per scripted step), not in one piece
    assert "".join(pieces) == full
    last_choice = [ch for ch in chunks if ch.choices][-1]
    assert last_choice.choices[0].finish_reason == "stop"
    d = last_choice.model_extra["parareason"]
    assert d["answer"] == extract_answer(full) and len(d["threads"]) == 1
    usage = chunks[-1].usage  # the include_usage chunk comes last, with no choices
    assert not chunks[-1].choices and usage.completion_tokens == len(full)
    assert len({ch.id for ch in chunks}) == 1


def test_chat_stream_many_samples_sends_the_chosen_text(server):
    url, _, _ = server
    c = client(url)
    body = dict(model=MODEL, messages=QUESTION, seed=21, extra_body={"parareason": {"n": 4}})
    full = c.chat.completions.create(**body)
    chunks = list(c.chat.completions.create(stream=True, **body))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == full.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["parareason"]["answer"] == _detail(full)["answer"]


def test_completion_stream(server):
    url, _, _ = server
    c = client(url)
    body = dict(model=MODEL, prompt="What is 3+3?", seed=2, extra_body={"parareason": {"n": 1}})
    full = c.completions.create(**body).choices[0].text
    chunks = list(c.completions.create(stream=True, **body))
    assert all(ch.object == "text_completion" for ch in chunks)
    assert "".join(ch.choices[0].text for ch in chunks) == full
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_raw_sse_ends_with_done(server):
    import httpx

    url, _, _ = server
    body = {"model": MODEL, "messages": QUESTION, "stream": True, "parareason": {"n": 2}}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert all(ln.startswith("data: ") or ln.startswith(":") for ln in lines)
    assert lines[-1] == "data: [DONE]" and lines.count("data: [DONE]") == 1


# Each policy by the extension object and by the model-name suffix (the fixture's server
# sets "deepprune.judge": "answer", so the suffix route runs deepprune with that judge).
POLICIES = ["sc", "ffs", "deepconf", "bom", "multi_temp", "rpc", "scale", "deepprune"]


def _expected_name(policy: str) -> str:
    return "deepprune" if policy == "deepprune" else make_policy(policy).name


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_by_extra_body(server, policy):
    url, _, _ = server
    r = client(url).chat.completions.create(
        model=MODEL, messages=QUESTION, seed=7, extra_body={"parareason": {"policy": policy, "n": 4}})
    d = _check_consistent(r, r.choices[0].message.content)
    assert d["policy"] == _expected_name(policy)
    assert d["answer"] in {"4", "5"} and d["threads"]


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_by_model_suffix(server, policy):
    url, _, _ = server
    r = client(url).chat.completions.create(model=f"{MODEL}+{policy}", messages=QUESTION, seed=7)
    assert r.model == f"{MODEL}+{policy}"
    d = _check_consistent(r, r.choices[0].message.content)
    assert d["policy"] == _expected_name(policy) and d["n"] == 3
    if policy == "deepprune":
        assert d["details"]["judge"] == "answer"  # the server's "deepprune.judge" parameter


def test_request_policy_args_override_server_ones(server):
    url, _, _ = server
    r = client(url).chat.completions.create(
        model=MODEL, messages=QUESTION,
        extra_body={"parareason": {"policy": "ffs", "n": 4, "policy_args": {"k": 2}}})
    assert len(_detail(r)["details"]["first_finished"]) == 2


def test_extra_body_wins_over_suffix_and_suffix_sets_protocol(server):
    url, _, _ = server
    c = client(url)
    r = c.chat.completions.create(model=f"{MODEL}+ffs", messages=QUESTION,
                                  extra_body={"parareason": {"policy": "bom", "n": 2}})
    assert _detail(r)["policy"] == _expected_name("bom") and _detail(r)["n"] == 2
    r = c.chat.completions.create(model=f"{MODEL}+ffs+apr", messages=QUESTION)
    assert _detail(r)["policy"] == "ffs" and _detail(r)["protocol"] == "apr"


def test_budget_bounds_all_threads_together(server):
    url, _, _ = server
    r = client(url).chat.completions.create(model=MODEL, messages=QUESTION,
                                            extra_body={"parareason": {"n": 4, "budget": 30}})
    d = _detail(r)
    assert r.usage.completion_tokens <= 30
    assert any(t["reason"] == "limit:tokens_per_request" for t in d["threads"])


def test_system_message_keeps_protocol_instructions(server):
    url, backend, _ = server
    before = len(backend.submitted)
    client(url).chat.completions.create(
        model=MODEL, seed=1, extra_body={"parareason": {"n": 1}},
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 2+2?"}])
    ctx = backend.tokenizer.decode(backend.submitted[before].input_ids)
    assert "\\boxed{}" in ctx and "Be terse." in ctx and "What is 2+2?" in ctx


def test_models_list_and_retrieve(server):
    url, _, _ = server
    c = client(url)
    ids = [m.id for m in c.models.list().data]
    assert ids[0] == MODEL and f"{MODEL}+ffs" in ids and f"{MODEL}+deepprune" in ids
    assert c.models.retrieve(f"{MODEL}+ffs").id == f"{MODEL}+ffs"

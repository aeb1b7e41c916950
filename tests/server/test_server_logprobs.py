"""Issue 17 item 10, generated tokens: `logprobs` / `top_logprobs` return the tokens of
the chosen sample (the one whose answer won), in OpenAI's chat and completions
shapes, cut with the text at a stop string; a backend without prompt scoring
refuses `echo` with a 400."""
from __future__ import annotations

import httpx
import pytest

from parareason.backends.base import BackendError
from parareason.backends.scripted import ScriptedBackend
from tests.support.server_harness import MODEL, client, scripted_server

Q = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(scope="module")
def server():
    with scripted_server() as s:  # seeded_reply: samples answer 4 or 5 depending on their seed
        yield s


def _chosen_thread(resp):
    d = resp.model_extra["parareason"]
    return d, [t for t in d["threads"] if t["id"].startswith(d["chosen_sample"] + ".")][0]


def test_chat_logprobs_are_the_chosen_samples_tokens(server):
    url, _, _ = server
    r = client(url).chat.completions.create(model=MODEL, messages=Q, logprobs=True, top_logprobs=2, seed=7,
                                            extra_body={"parareason": {"n": 4}})
    content = r.choices[0].message.content
    d, chosen = _chosen_thread(r)
    lp = r.choices[0].logprobs.content
    assert "".join(t.token for t in lp) == content  # the winning sample's tokens, not another's
    assert d["answer"] in content and len(lp) == chosen["tokens"]
    for t in lp:
        assert -3 < t.logprob <= 0 and t.bytes == list(t.token.encode())
        assert len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token
        assert t.top_logprobs[0].logprob == t.logprob > t.top_logprobs[1].logprob


def test_completion_logprobs_shape(server):
    url, _, _ = server
    r = client(url).completions.create(model=MODEL, prompt="What is 3+3?", logprobs=2, seed=5, max_tokens=200)
    text, lp = r.choices[0].text, r.choices[0].logprobs
    assert "".join(lp.tokens) == text and len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    for tok, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert top[tok] == value == max(top.values())  # the chosen token is listed (and was the best here)


def test_logprobs_stop_with_the_text_at_a_stop_string(server):
    url, _, _ = server
    r = client(url).chat.completions.create(model=MODEL, messages=Q, logprobs=True, stop=["step"])
    assert r.choices[0].message.content == "Let me compute 2+2 "
    assert "".join(t.token for t in r.choices[0].logprobs.content) == "Let me compute 2+2 "


def test_streamed_logprobs_come_on_the_last_chunk(server):
    url, _, _ = server
    chunks = list(client(url).chat.completions.create(model=MODEL, messages=Q, logprobs=True, stream=True,
                                                      extra_body={"parareason": {"n": 1}}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop" and "".join(t.token for t in last.logprobs.content) == text


def test_without_logprobs_none_are_sent(server):
    url, _, _ = server
    body = httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": Q}).json()
    assert body["choices"][0]["logprobs"] is None


def test_echo_needs_a_backend_that_scores_prompts(server):
    url, _, _ = server
    with pytest.raises(BackendError, match="does not support prompt scoring"):
        ScriptedBackend(lambda ctx: "x").score_prompt([1, 2, 3])
    r = httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "2+2", "echo": True, "logprobs": 1,
                                                  "max_tokens": 1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "echo"
    assert "prompt scoring" in r.json()["error"]["message"]

"""Issue 17 item 8: the stop string is never in the returned text (chat and completions,
streamed or not, openai SDK and raw HTTP), and a stream holds back a partial match."""
from __future__ import annotations

import json

import httpx
import pytest

from parareason.server.stops import cut_at_stop, sendable
from tests.support.server_harness import MODEL, client, scripted_server

REPLY = "Count: 1\n2\n3\n4\n5 and STxy then STOP here \\boxed{5}"


@pytest.fixture(scope="module")
def server():
    # One token (character) per step: a stream sees every prefix of the reply.
    with scripted_server(script=lambda ctx: REPLY, tokens_per_step=1, n=1) as s:
        yield s


def test_cut_and_sendable():
    assert cut_at_stop("a STOP b", ["STOP"]) == "a "
    assert cut_at_stop("a 4 b 3", ["3", "4"]) == "a "  # the earliest of several
    assert cut_at_stop("abc", ["x"]) == "abc"
    assert sendable("abc ST", ["STOP"]) == "abc "  # "ST" may still become "STOP"
    assert sendable("abc STx", ["STOP"]) == "abc STx"  # decided: not a stop
    assert sendable("abc STOP and more", ["STOP"]) == "abc "
    assert sendable("ab\n", ["\n\n", "b\nc"]) == "a"  # the longest possible start wins
    assert sendable("abc", []) == "abc"


@pytest.mark.parametrize("stop, expected", [("\n4", "Count: 1\n2\n3"), (["STOP", "zz"], "Count: 1\n2\n3\n4\n5 and STxy then ")])
def test_chat_and_completion_text_excludes_the_stop_string(server, stop, expected):
    url, _, _ = server
    c = client(url)
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count"}], stop=stop)
    assert r.choices[0].message.content == expected and r.choices[0].finish_reason == "stop"
    r = c.completions.create(model=MODEL, prompt="count", stop=stop)
    assert r.choices[0].text == expected and r.choices[0].finish_reason == "stop"
    # the same with several samples (the chosen one is cut, not only a live-streamed one)
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count"}], stop=stop,
                                  extra_body={"parareason": {"n": 3}})
    assert r.choices[0].message.content == expected


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_streams_hold_back_partial_matches_and_never_send_the_stop(server, kind):
    url, _, _ = server
    c = client(url)
    stop = ["STOP"]
    if kind == "chat":
        chunks = list(c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count"}],
                                                stop=stop, stream=True))
        deltas = [ch.choices[0].delta.content or "" for ch in chunks if ch.choices]
    else:
        chunks = list(c.completions.create(model=MODEL, prompt="count", stop=stop, stream=True))
        deltas = [ch.choices[0].text for ch in chunks if ch.choices]
    text = "".join(deltas)
    assert text == "Count: 1\n2\n3\n4\n5 and STxy then "
    assert len([d for d in deltas if d]) > 10  # it really streamed, token by token
    # "ST" of "STxy" was held back until "x" decided it; nothing after it was ever sent
    assert not any(d.endswith("S") or d.endswith("ST") for d in deltas if d)


def test_raw_http_body_excludes_the_stop_string(server):
    url, _, _ = server
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "stop": "\n3",
                                                       "messages": [{"role": "user", "content": "count"}]})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Count: 1\n2"
    with httpx.stream("POST", f"{url}/v1/completions", json={"model": MODEL, "prompt": "count", "stop": ["\n3"],
                                                              "stream": True}) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1] if json.loads(e).get("choices"))
    assert text == "Count: 1\n2"


def test_more_stop_strings_than_openai_allows_as_lm_eval_sends_them(server):
    url, _, _ = server
    stops = ["Question:", "</s>", "<|im_end|>", "\n\n", "zz", "\n3"]  # a task's `until` + EOS: 6
    r = client(url).completions.create(model=MODEL, prompt="count", stop=stops)
    assert r.choices[0].text == "Count: 1\n2"
    bad = httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "count", "stop": ["x"] * 17})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "stop"

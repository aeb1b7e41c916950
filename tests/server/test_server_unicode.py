"""A lone surrogate in a request's text is a 400 naming the field (issue 17 item 2, the
server's side): the JSON escape "\\ud800" parses, but it is no Unicode. Before, the server
answered 200 and ran the request. The bodies are sent as raw bytes with httpx: the openai
client cannot even encode such a string to send it."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.support.server_harness import MODEL, scripted_server


@pytest.fixture(scope="module")
def server():
    with scripted_server(tokens_per_step=16) as (url, backend, _):
        yield url, backend


def post(url: str, path: str, raw_json: str) -> httpx.Response:
    return httpx.post(url + path, content=raw_json.encode("ascii"), headers={"content-type": "application/json"},
                      timeout=30)


GOOD_CHAT = [{"role": "user", "content": "What is 2+2?"}]


@pytest.mark.parametrize("path,body,param,fragment", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "bad \\ud800 x"}]},
     "messages.0.content", "U+D800 at character 5"),
    ("/v1/chat/completions", {"messages": [{"role": "system", "content": "ok"},
                                           {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                        {"type": "text", "text": "\\udfff"}]}]},
     "messages.1.content", "part 1's text holds a lone surrogate (U+DFFF at character 1)"),
    ("/v1/chat/completions", {"messages": GOOD_CHAT, "stop": ["ok", "x\\ud83d"]}, "stop", "stop string 1"),
    ("/v1/completions", {"prompt": "bad \\udfff"}, "prompt", "U+DFFF"),
    ("/v1/completions", {"prompt": ["fine", "\\ud800"], "echo": True, "max_tokens": 0, "logprobs": 1},
     "prompt", "prompt 1 holds"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(server, path, body, param, fragment):
    url, backend = server
    before = len(backend.submitted)
    # json.dumps escapes the backslash: undo it so the body carries the JSON escape itself
    r = post(url, path, json.dumps({"model": MODEL, **body}).replace("\\\\u", "\\u"))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and "lone surrogate" in err["message"] and fragment in err["message"]
    assert len(backend.submitted) == before  # nothing ran


def test_escaped_valid_characters_still_pass(server):
    url, _ = server
    # a surrogate pair is one valid character (U+1F600), not a lone surrogate
    r = post(url, "/v1/chat/completions",
             json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "2+2? \\ud83d\\ude00"}]})
             .replace("\\\\u", "\\u"))
    assert r.status_code == 200, r.text

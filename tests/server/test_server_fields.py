"""Issue 17 items 9 and 11: fields parareason does not implement are refused with a 400
naming them (their no-op values pass); usage reports cached tokens; responses carry
a `system_fingerprint` of the server's configuration and an `x-request-id` header."""
from __future__ import annotations

import httpx
import openai
import pytest

from parareason.server import ServeDefaults
from parareason.server.responses import system_fingerprint
from tests.support.server_harness import MODEL, client, scripted_server

Q = [{"role": "user", "content": "What is 2+2?"}]
TOOL = {"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def server():
    with scripted_server() as s:
        yield s


REFUSED = [
    ("tools", [TOOL]),
    ("tool_choice", "required"),
    ("tool_choice", {"type": "function", "function": {"name": "add"}}),
    ("functions", [{"name": "add", "parameters": {}}]),
    ("function_call", {"name": "add"}),
    ("response_format", {"type": "json_object"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
    ("presence_penalty", 0.5),
    ("frequency_penalty", -1),
    ("logit_bias", {"50256": -100}),
]


@pytest.mark.parametrize("field, value", REFUSED)
def test_unimplemented_fields_are_refused_with_their_name(server, field, value):
    url, backend, _ = server
    before = len(backend.submitted)
    for path, body in (("/v1/chat/completions", {"messages": Q}), ("/v1/completions", {"prompt": "2+2?"})):
        r = httpx.post(url + path, json={"model": MODEL, **body, field: value})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == field and field in err["message"] and err["code"] == "unsupported_parameter"
    assert len(backend.submitted) == before  # refused before anything ran
    with pytest.raises(openai.BadRequestError) as e:  # the official client shows the same
        client(url).chat.completions.create(model=MODEL, messages=Q, extra_body={field: value})
    assert e.value.body["param"] == field


def test_no_op_values_of_those_fields_pass(server):
    url, _, _ = server
    r = client(url).chat.completions.create(
        model=MODEL, messages=Q, tools=[], tool_choice="none", response_format={"type": "text"},
        presence_penalty=0, frequency_penalty=0.0, logit_bias={}, user="someone", metadata={"a": "b"})
    assert r.choices[0].message.content


def test_usage_reports_cached_tokens_of_all_samples(server):
    url, _, _ = server
    r = client(url).chat.completions.create(model=MODEL, messages=Q, extra_body={"parareason": {"n": 3}})
    d = r.model_extra["parareason"]
    cached = r.usage.prompt_tokens_details.cached_tokens
    assert cached == d["usage"]["cached_tokens"] > 0  # samples 2 and 3 reuse the prompt's KV
    assert r.usage.completion_tokens == sum(t["tokens"] for t in d["threads"])  # every sample counted
    chunks = list(client(url).chat.completions.create(model=MODEL, messages=Q, stream=True,
                                                      stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0


def test_system_fingerprint_names_the_configuration(server):
    url, backend, app = server
    c = client(url)
    a = c.chat.completions.create(model=MODEL, messages=Q)
    b = c.completions.create(model=MODEL, prompt="2+2?")
    chunks = list(c.chat.completions.create(model=MODEL, messages=Q, stream=True))
    assert a.system_fingerprint.startswith("fp_")
    assert a.system_fingerprint == b.system_fingerprint == chunks[0].system_fingerprint == app.state.system_fingerprint
    base = ServeDefaults(model_id=MODEL)
    assert system_fingerprint(base, backend) == system_fingerprint(ServeDefaults(model_id=MODEL), backend)
    assert system_fingerprint(base, backend) != system_fingerprint(ServeDefaults(model_id=MODEL, n=5), backend)


def test_every_response_has_an_x_request_id(server):
    url, _, _ = server
    raw = client(url).chat.completions.with_raw_response.create(model=MODEL, messages=Q)
    assert raw.headers["x-request-id"] == raw.parse().id
    with httpx.stream("POST", f"{url}/v1/completions", json={"model": MODEL, "prompt": "2+2?", "stream": True}) as r:
        first = next(line for line in r.iter_lines() if line.startswith("data: "))
        assert r.headers["x-request-id"] in first  # the stream's chunks carry the same id
    assert httpx.get(f"{url}/v1/models").headers["x-request-id"]
    bad = httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert bad.status_code == 400 and bad.headers["x-request-id"]
    mine = httpx.get(f"{url}/health", headers={"x-request-id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"

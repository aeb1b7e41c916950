"""Bad requests get clear OpenAI-style errors; a failing policy ends only its request."""
from __future__ import annotations

import threading

import httpx
import openai
import pytest

from parareason.runtime.policy import Decision, Policy
from tests.support.server_harness import MODEL, client, scripted_server

Q = [{"role": "user", "content": "What is 2+2?"}]


class ExplodingPolicy(Policy):
    """A policy with a bug: raises once its samples produce tokens."""

    name = "test-explode"

    def __init__(self, n: int) -> None:
        self.n = n

    @property
    def width(self) -> int:
        return self.n

    def start(self, ctx):
        for _ in range(self.n):
            ctx.launch()

    def on_tokens(self, ctx, sample, new_tokens):
        raise RuntimeError("boom in policy")

    def finalize(self, ctx):
        return Decision(None)


@pytest.fixture(scope="module")
def server():
    extra = {"explode": lambda p: ExplodingPolicy(p["n"])}
    with scripted_server(extra_policies=extra, max_new_tokens_limit=1000) as s:
        yield s


def _bad(url, **body):
    with pytest.raises(openai.BadRequestError) as e:
        client(url).chat.completions.create(**{"model": MODEL, "messages": Q, **body})
    err = e.value.body
    assert e.value.status_code == 400 and err["type"] == "invalid_request_error" and err["message"]
    return err


def test_invalid_fields_are_400_with_the_offending_param(server):
    url, _, _ = server
    assert "messages" in _bad(url, messages=[])["param"]
    assert _bad(url, temperature=5)["param"] == "temperature"
    assert "parareason" in _bad(url, n=2)["message"]  # samples go in the extension object
    assert "logprobs" in _bad(url, top_logprobs=2)["message"]  # top_logprobs needs logprobs=true
    assert _bad(url, logprobs=True, top_logprobs=21)["param"] == "top_logprobs"
    assert _bad(url, messages=[{"role": "assistant", "content": "hi"}])["param"] == "messages"
    assert _bad(url, messages=[{"role": "user", "content": "  "}])["param"] == "messages"
    assert _bad(url, messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    assert _bad(url, max_tokens=5000)["param"] == "max_tokens"
    assert _bad(url, max_tokens=0)["param"] == "max_tokens"


def test_bad_extension_object_is_400(server):
    url, _, _ = server
    assert "unknown policy" in _bad(url, extra_body={"parareason": {"policy": "nope"}})["message"]
    err = _bad(url, extra_body={"parareason": {"policy": "ffs", "policy_args": {"zz": 1}}})
    assert "zz" in err["message"]
    assert _bad(url, extra_body={"parareason": {"n": 0}})["param"] == "parareason.n"
    assert _bad(url, extra_body={"parareason": {"n": 100000}})["param"] == "parareason.n"
    assert "polcy" in _bad(url, extra_body={"parareason": {"polcy": "ffs"}})["message"]  # typos are not ignored
    assert "protocol" in _bad(url, extra_body={"parareason": {"protocol": "telepathy"}})["message"]
    assert _bad(url, extra_body={"parareason": {"deadline": 10**6}})["param"] == "parareason.deadline"


def test_clients_cannot_name_server_files_or_send_huge_prompts(server):
    url, _, _ = server
    for args in ({"judge": "trained", "head": "/etc/passwd"},
                 {"inner": "deepprune", "inner_params": {"calibration": "/etc/hosts"}}):
        err = _bad(url, extra_body={"parareason": {"policy": "deepprune" if "judge" in args else "sc",
                                                   "policy_args": args}})
        assert err["param"] == "parareason.policy_args" and "--policy-arg" in err["message"]
    assert _bad(url, messages=[{"role": "user", "content": "x" * 200_001}])["param"] == "messages"


def test_unknown_model_or_suffix_is_404(server):
    url, _, _ = server
    for model in ("gpt-4o", f"{MODEL}+nope", f"{MODEL}+ffs+ffs"):
        with pytest.raises(openai.NotFoundError) as e:
            client(url).chat.completions.create(model=model, messages=Q)
        assert e.value.body["code"] == "model_not_found"


def test_malformed_http_bodies(server):
    url, _, _ = server
    cases = [
        ("POST", "/v1/chat/completions", b"{not json", 400),
        ("POST", "/v1/chat/completions", b"[1, 2]", 400),
        ("POST", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}]}', 400),  # no model
        ("POST", "/v1/completions", b'{"model": "toy-model", "prompt": ["a", "b"]}', 400),
        ("POST", "/v1/completions", b'{"model": "toy-model", "prompt": [[1, 2], [3]]}', 400),  # 2 prompts
        ("POST", "/v1/completions", b'{"model": "toy-model", "prompt": [[]]}', 400),
        ("POST", "/v1/completions", b'{"model": "toy-model", "prompt": "x", "max_tokens": 0}', 400),
        # echo is prompt scoring, which the scripted backend cannot do
        ("POST", "/v1/completions", b'{"model": "toy-model", "prompt": "x", "echo": true, "max_tokens": 0}', 400),
        ("POST", "/v1/completions", b'{"model": "toy-model", "prompt": "x", "echo": true, "max_tokens": 9}', 400),
        ("GET", "/v1/nothing-here", b"", 404),
        ("GET", "/v1/chat/completions", b"", 405),
    ]
    for method, path, body, status in cases:
        r = httpx.request(method, url + path, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (path, body, r.text)
        err = r.json()["error"]
        assert err["message"] and err["type"], r.text
    r = httpx.post(url + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert "JSON" in r.json()["error"]["message"]


def test_policy_exception_fails_only_its_request(server):
    url, _, app = server
    c = client(url)
    good: list = []
    t = threading.Thread(target=lambda: good.append(
        c.chat.completions.create(model=MODEL, messages=Q, extra_body={"parareason": {"n": 4}})))
    t.start()
    with pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model=MODEL, messages=Q, extra_body={"parareason": {"policy": "explode"}})
    assert "boom in policy" in e.value.body["message"]
    assert e.value.body["type"] == "server_error"
    with pytest.raises(openai.APIError, match="boom in policy"):  # streamed: an error event before [DONE]
        for _ in c.chat.completions.create(model=MODEL, messages=Q, stream=True,
                                           extra_body={"parareason": {"policy": "explode", "n": 1}}):
            pass
    t.join(30)
    assert good and good[0].model_extra["parareason"]["error"] is None
    h = httpx.get(url + "/health").json()
    assert h["status"] == "ok" and h["engine"]["alive"] and h["in_flight"] == 0
    # and the server goes on serving
    assert c.chat.completions.create(model=MODEL, messages=Q).choices[0].message.content


def test_health_and_nothing_leaks_after_errors(server):
    url, backend, app = server
    h = httpx.get(url + "/health").json()
    assert h["status"] == "ok" and h["model"] == MODEL and h["in_flight"] == 0
    assert app.state.engine.scheduler.trie.live_nodes() == 0
    assert not backend.has_work()


def test_backend_fault_fails_requests_in_flight_and_the_server_recovers():
    from parareason.backends.base import BackendError
    from tests.support.server_harness import RecordingBackend, wait_until

    class FlakyBackend(RecordingBackend):
        fail_next = False

        def step(self, timeout_s=0.05):
            if self.fail_next:
                self.fail_next = False
                raise BackendError("worker lost")
            return super().step(timeout_s)

    from parareason.server import ServeDefaults, create_app
    from parareason.server.background import serve_in_background

    backend = FlakyBackend(lambda ctx: "x " * 100 + "\\boxed{1}", tokens_per_step=1, latency_s=0.01)
    app = create_app(backend, ServeDefaults(model_id=MODEL, n=2))
    with serve_in_background(app) as url:
        c = client(url)
        errors: list = []

        def doomed():
            try:
                c.chat.completions.create(model=MODEL, messages=Q)
            except openai.InternalServerError as e:
                errors.append(e)

        t = threading.Thread(target=doomed)
        t.start()
        wait_until(lambda: backend.has_work(), what="request running")
        backend.fail_next = True
        t.join(30)
        assert errors and "backend failure: BackendError: worker lost" in errors[0].body["message"]
        backend.script = lambda ctx: "\\boxed{2}"
        r = c.chat.completions.create(model=MODEL, messages=Q)
        assert r.model_extra["parareason"]["answer"] == "2"
        h = httpx.get(url + "/health").json()
        assert h["status"] == "ok" and h["engine"]["backend_faults"] == 1 and h["in_flight"] == 0

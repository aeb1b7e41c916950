"""Concurrency: 429 admission, disconnects abort threads, deadlines, a bounded load test."""
from __future__ import annotations

import asyncio
import json
import re

import httpx
import openai
import pytest

from parareason.grading import extract_answer
from tests.support.server_harness import MODEL, async_client, client, scripted_server, wait_until

SLOW = "(slow)"


def slow_or_quick(ctx):
    """Requests mentioning (slow) run ~400 tokens (one per step), others answer at once;
    the answer echoes the question's number so replies cannot be mixed up."""
    m = re.search(r"Question #(\d+)", ctx.text)
    k = m.group(1) if m else "0"
    if SLOW in ctx.text:
        return "thinking " * 45 + f"\\boxed{{{k}}}"
    return f"The answer is \\boxed{{{k}}}."


def ask(k: int, slow: bool = False) -> list[dict]:
    return [{"role": "user", "content": f"Question #{k} {SLOW if slow else ''}"}]


@pytest.fixture(scope="module")
def server():
    with scripted_server(script=slow_or_quick, tokens_per_step=1, latency_s=0.01, max_in_flight=34) as s:
        yield s


class OpenStream:
    """A slow streaming request held open; created once its first chunk arrived (admitted)."""

    def __init__(self, url: str, k: int, n: int = 3) -> None:
        self.http = httpx.Client(timeout=30)
        body = {"model": MODEL, "messages": ask(k, slow=True), "stream": True, "parareason": {"n": n}}
        self.resp = self.http.send(self.http.build_request("POST", f"{url}/v1/chat/completions", json=body),
                                   stream=True)
        assert self.resp.status_code == 200
        self.lines = self.resp.iter_lines()  # kept: a dropped line iterator may close the stream
        first = next(ln for ln in self.lines if ln.startswith("data: "))
        self.request_id = json.loads(first[len("data: "):])["id"]

    def disconnect(self) -> None:
        self.resp.close()
        self.http.close()


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=5).json()


def test_streaming_disconnect_aborts_all_threads_of_that_request(server):
    url, backend, app = server
    engine = app.state.engine
    cancelled0 = engine.stats.cancelled
    stream = OpenStream(url, 1, n=3)
    rid = stream.request_id
    wait_until(lambda: sum(q.seq_id.startswith(rid + "|") for q in backend.submitted) == 3, what="3 threads submitted")
    assert engine.stats.cancelled == cancelled0 and not backend.aborted
    stream.disconnect()
    wait_until(lambda: engine.stats.cancelled == cancelled0 + 1, what="request cancelled")
    wait_until(lambda: len([s for s in backend.aborted if s.startswith(rid + "|")]) == 3, what="3 aborts")
    wait_until(lambda: not backend.has_work() and not engine.scheduler.live_requests(), what="backend idle")
    assert engine.scheduler.trie.live_nodes() == 0
    assert _health(url)["in_flight"] == 0


def test_non_streaming_disconnect_aborts_threads(server):
    url, backend, app = server
    engine = app.state.engine
    cancelled0, aborted0 = engine.stats.cancelled, len(backend.aborted)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", timeout=0.6,
                   json={"model": MODEL, "messages": ask(2, slow=True), "parareason": {"n": 2}})
    wait_until(lambda: engine.stats.cancelled == cancelled0 + 1, what="request cancelled")
    wait_until(lambda: len(backend.aborted) - aborted0 == 2, what="both threads aborted")
    wait_until(lambda: not backend.has_work(), what="backend idle")
    assert _health(url)["in_flight"] == 0


def test_too_many_in_flight_is_429_then_recovers():
    with scripted_server(script=slow_or_quick, tokens_per_step=1, latency_s=0.01, max_in_flight=2) as (url, _, _):
        held = [OpenStream(url, k, n=1) for k in (1, 2)]
        with pytest.raises(openai.RateLimitError) as e:
            client(url).chat.completions.create(model=MODEL, messages=ask(3))
        assert e.value.status_code == 429
        assert "too many requests in flight" in e.value.body["message"] and "2" in e.value.body["message"]
        assert e.value.body["code"] == "too_many_requests_in_flight"
        assert e.value.response.headers["retry-after"] == "1"
        h = _health(url)
        assert h["status"] == "ok" and h["in_flight"] == 2  # /health is never refused
        for stream in held:
            stream.disconnect()
        wait_until(lambda: _health(url)["in_flight"] == 0, what="slots released")
        r = client(url).chat.completions.create(model=MODEL, messages=ask(4))
        assert extract_answer(r.choices[0].message.content) == "4"


def test_deadline_ends_a_request_with_its_threads_at_the_limit(server):
    url, _, _ = server
    r = client(url).chat.completions.create(model=MODEL, messages=ask(5, slow=True),
                                            extra_body={"parareason": {"n": 2, "deadline": 0.3}})
    d = r.model_extra["parareason"]
    assert r.choices[0].finish_reason == "length"
    assert d["threads"] and all(t["reason"] == "limit:deadline_s" for t in d["threads"])
    assert 0 < r.usage.completion_tokens < 2 * 405  # cut short: a full slow sample is 405 tokens


def test_32_concurrent_requests_share_the_engine_and_health_answers(server):
    url, backend, app = server
    steps0 = app.state.engine.stats.steps

    async def main():
        c = async_client(url, timeout=60)
        health: list[dict] = []
        stop = asyncio.Event()

        async def poll_health():
            async with httpx.AsyncClient(timeout=5) as h:
                while not stop.is_set():
                    r = await h.get(f"{url}/health")
                    assert r.status_code == 200
                    health.append(r.json())
                    await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll_health())
        try:
            results = await asyncio.gather(*[
                c.chat.completions.create(model=MODEL, messages=ask(k), stream=(k % 4 == 0),
                                          extra_body={"parareason": {"n": 2}})
                for k in range(32)])
            texts = []
            for k, r in enumerate(results):
                if k % 4 == 0:
                    texts.append("".join([ch.choices[0].delta.content or "" async for ch in r if ch.choices]))
                else:
                    texts.append(r.choices[0].message.content)
        finally:
            stop.set()
            await poller
        return texts, health

    texts, health = asyncio.run(main())
    assert [extract_answer(t) for t in texts] == [str(k) for k in range(32)]  # no request got another's reply
    assert health and max(h["in_flight"] for h in health) > 1
    assert backend.max_requests_per_step > 1  # threads of several requests ran in one backend step
    assert app.state.engine.stats.steps - steps0 < 32 * 20  # far fewer steps than one request at a time
    wait_until(lambda: _health(url)["in_flight"] == 0, what="all slots free")

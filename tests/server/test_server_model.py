"""Smoke test of `parareason serve` on a real model (smollm2-135m, the small shipped GGUF, as the
session's shared `engine` fixture)."""
from __future__ import annotations

import pytest

from parareason.server import ServeDefaults, create_app
from tests.support.engine_util import TEST_MODEL
from tests.support.server_harness import client, serve_in_thread

MODEL = TEST_MODEL


@pytest.fixture(scope="module")
def server(engine):
    """The session's shared engine (tests/conftest.py), left open for the next module."""
    app = create_app(engine, ServeDefaults(model_id=MODEL, n=2, max_new_tokens=12, seed=0))
    with serve_in_thread(app) as url:
        yield url, engine


def test_real_model_chat_and_stream(server):
    url, backend = server
    c = client(url, timeout=120)
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "What is 12 plus 30?"}])
    d = r.model_extra["parareason"]
    assert d["error"] is None and len(d["threads"]) == 2
    assert r.choices[0].message.content.strip()
    assert 0 < r.usage.completion_tokens == sum(t["tokens"] for t in d["threads"]) <= 2 * 12
    assert d["usage"]["cached_tokens"] > 0  # the second sample reused the prompt's KV
    chunks = list(c.chat.completions.create(model=f"{MODEL}+ffs", stream=True, max_tokens=8,
                                            messages=[{"role": "user", "content": "Name a color."}],
                                            extra_body={"parareason": {"n": 1}}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.strip() and chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].model_extra["parareason"]["policy"] == "ffs"
    assert not backend.has_work()

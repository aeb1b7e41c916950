"""LangChain (`langchain-openai`) and LiteLLM against the server, as issue 17 used them
(stop strings, streaming, an API key, the `parareason` extension via extra_body).
Skipped where the clients are not installed (`pip install -e .[clients]`)."""
from __future__ import annotations

import os

import pytest

from tests.support.server_harness import MODEL, scripted_server

REPLY = "Counting: 1\n2\n3\n4\n5 \\boxed{5}"
KEY = "sk-clients"


@pytest.fixture(scope="module")
def server():
    with scripted_server(script=lambda ctx: REPLY, tokens_per_step=2, n=1, api_key=KEY) as s:
        yield s


def test_langchain_invoke_and_stream_honour_stop(server):
    lc = pytest.importorskip("langchain_openai")
    url, _, _ = server
    llm = lc.ChatOpenAI(base_url=f"{url}/v1", api_key=KEY, model=MODEL, max_retries=0, temperature=0)
    msg = llm.invoke("count to five", stop=["4"])
    assert msg.content == "Counting: 1\n2\n3\n"  # issue 17: it returned "…3\n4"
    assert msg.response_metadata["system_fingerprint"].startswith("fp_")
    streamed = "".join(chunk.content for chunk in llm.stream("count to five", stop=["\n4"]))
    assert streamed == "Counting: 1\n2\n3"
    extra = lc.ChatOpenAI(base_url=f"{url}/v1", api_key=KEY, model=MODEL, max_retries=0,
                          extra_body={"parareason": {"n": 2, "policy": "ffs"}})
    assert extra.invoke("count").content == REPLY


def test_litellm_completion_and_stream(server):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
    litellm = pytest.importorskip("litellm")
    url, _, _ = server
    kw = dict(model=f"openai/{MODEL}", api_base=f"{url}/v1", api_key=KEY, num_retries=0,
              messages=[{"role": "user", "content": "count to five"}])
    r = litellm.completion(stop=["\n3"], **kw)
    assert r.choices[0].message.content == "Counting: 1\n2"
    assert r.usage.completion_tokens > 0
    chunks = list(litellm.completion(stream=True, stop=["5"], **kw))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Counting: 1\n2\n3\n4\n"
    with pytest.raises(litellm.exceptions.AuthenticationError):
        litellm.completion(**{**kw, "api_key": "wrong"})

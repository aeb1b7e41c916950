"""The vLLM wire format: request bodies and stream chunks (no server).

The chunks in tests/fixtures/vllm_stream.jsonl were captured from a real vLLM CPU 0.32.0
server (qwen2.5-0.5b-coder, `--enable-prompt-tokens-details`), see the fixture README."""
from __future__ import annotations

import json

import pytest

from parareason.backends.base import (
    FINISH_EOS, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP_STRING, FINISH_STOP_TOKEN, GenerationRequest, SamplingParams,
)
from parareason.backends.vllm.startup import cache_config, prefix_caching_from_metrics
from parareason.backends.vllm.wire import completion_body, decode_chunk, map_finish, token_id
from tests.support.paths import FIXTURES


def test_body_sends_token_ids_and_asks_for_token_ids_back():
    req = GenerationRequest("s1", (1, 2, 3), SamplingParams(temperature=0.5, top_p=0.9, top_k=20, seed=7,
                                                             max_new_tokens=99, stop_strings=("</spawn>",),
                                                             stop_token_ids=(5,), top_logprobs=30))
    body = completion_body(req, model="m", request_id="r", max_tokens=40, max_logprobs=20)
    assert body["prompt"] == [1, 2, 3] and body["max_tokens"] == 40  # capped by the caller
    assert body["return_token_ids"] and body["return_tokens_as_token_ids"] and not body["skip_special_tokens"]
    assert body["logprobs"] == 20  # the server's limit, not the 30 asked for
    assert (body["seed"], body["top_k"], body["stop"], body["stop_token_ids"]) == (7, 20, ["</spawn>"], [5])
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    plain = completion_body(GenerationRequest("s", (1,), SamplingParams()), model="m", request_id="r",
                            max_tokens=1, max_logprobs=20)
    assert "seed" not in plain and "top_k" not in plain and "stop" not in plain and plain["logprobs"] == 0


def test_chunk_with_logprobs_and_alternatives():
    data = {"choices": [{"index": 0, "text": "Hi", "token_ids": [13, 14],
                         "logprobs": {"tokens": ["token_id:13", "token_id:14"], "token_logprobs": [-0.5, -1.0],
                                      "top_logprobs": [{"token_id:13": -0.5, "token_id:99": -0.2},
                                                       {"token_id:14": -1.0}]},
                         "finish_reason": None}]}
    c = decode_chunk(data, top_k=1)
    assert c.token_ids == [13, 14] and c.logprobs == [-0.5, -1.0]
    assert c.top_logprobs == [[(99, -0.2)], [(14, -1.0)]]  # best first, cut to k
    assert c.error is None and c.finish_reason is None


def test_usage_chunk_carries_cached_prompt_tokens_and_errors_are_read():
    c = decode_chunk({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 3,
                                               "prompt_tokens_details": {"cached_tokens": 32}}}, 0)
    assert (c.prompt_tokens, c.cached_tokens) == (40, 32)
    err = decode_chunk({"error": {"message": "boom", "type": "InternalServerError", "param": None, "code": 500}}, 0)
    assert (err.error, err.error_code) == ("boom", 500)
    bad = decode_chunk({"choices": [{"token_ids": [1, 2], "logprobs": {"token_logprobs": [-1.0]}}]}, 0)
    assert bad.error and "2 token ids" in bad.error
    with pytest.raises(ValueError):
        token_id("Hello")


@pytest.mark.parametrize("finish,stop,want", [
    ("stop", None, (FINISH_EOS, None, None)), ("stop", "</spawn>", (FINISH_STOP_STRING, "</spawn>", None)),
    ("stop", 5, (FINISH_STOP_TOKEN, 5, None)), ("stop", 151645, (FINISH_EOS, 151645, None)),
    ("length", None, (FINISH_LENGTH, None, None))])
def test_finish_mapping(finish, stop, want):
    assert map_finish(finish, stop, (5,)) == want


def test_an_abort_by_the_server_is_an_error():
    reason, _, error = map_finish("abort", None, ())
    assert reason == FINISH_ERROR and "abort" in error


def test_prefix_caching_is_read_from_the_metrics():
    text = ('# TYPE vllm:cache_config_info gauge\n'
            'vllm:cache_config_info{block_size="128",enable_prefix_caching="True",engine="0"} 1.0\n')
    assert prefix_caching_from_metrics(text) is True and cache_config(text)["block_size"] == "128"
    assert prefix_caching_from_metrics(text.replace("True", "False")) is False
    assert prefix_caching_from_metrics("nothing here") is None


def test_captured_stream_decodes_to_the_server_tokens():
    path = FIXTURES / "vllm_stream.jsonl"
    chunks = [decode_chunk(json.loads(line), top_k=2) for line in path.read_text().splitlines() if line.strip()]
    tokens = [t for c in chunks for t in c.token_ids]
    assert tokens and all(len(c.logprobs) == len(c.token_ids) for c in chunks)
    assert all(c.top_logprobs is None or len(c.top_logprobs) == len(c.token_ids) for c in chunks)
    finishes = [c.finish_reason for c in chunks if c.finish_reason]
    assert finishes and finishes[-1] in ("stop", "length")
    assert chunks[-1].prompt_tokens and chunks[-1].cached_tokens is not None

"""Issue 17 items 10 and 3 on the small real model (smollm2-135m, embedded engine):
prompt scoring with `echo` as lm-evaluation-harness's `local-completions` sends and
parses it (lm_eval/models/openai_completions.py: `_create_payload(generate=False)`,
`parse_logprobs`), checked against what greedy decode reported for the same tokens;
and a prompt longer than the model's context is a 400 with both numbers."""
from __future__ import annotations

import re
from operator import itemgetter

import httpx
import pytest

from parareason.server import ServeDefaults, create_app
from tests.support.engine_util import greedy, request, run_all
from tests.support.server_harness import client, serve_in_thread

MODEL = "smollm2-135m"
CONTEXT = "Question: What is the capital of France?\nAnswer:"


@pytest.fixture(scope="module")
def server(engine):
    app = create_app(engine, ServeDefaults(model_id=MODEL, n=1, max_new_tokens=8, seed=0))
    with serve_in_thread(app) as url:
        yield url, engine


def lm_eval_payload(inputs: list[list[int]]) -> dict:
    """What LocalCompletionsAPI._create_payload(generate=False) sends (tokenized requests)."""
    return {"model": MODEL, "prompt": inputs, "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": 1234,
            "echo": True}


def lm_eval_parse(out: dict, ctxlens: list[int]) -> list[tuple[float, bool]]:
    """LocalCompletionsAPI.parse_logprobs, verbatim in effect."""
    res = []
    for choice, ctxlen in zip(sorted(out["choices"], key=itemgetter("index")), ctxlens):
        logprobs = choice["logprobs"]["token_logprobs"][ctxlen:-1]
        tops = choice["logprobs"]["top_logprobs"][ctxlen:-1]
        res.append((sum(logprobs), all(tok == max(top.values()) for tok, top in zip(logprobs, tops))))
    return res


def _greedy_continuation(engine, ids: list[int], n: int):
    """Greedy decode on the engine directly (the server's loop is idle between requests)."""
    engine.submit(request("greedy", ids, greedy(n)))
    got = run_all(engine)["greedy"]
    return got.tokens, got.logprobs


def test_lm_eval_loglikelihood_request_matches_greedy_decode(server):
    url, engine = server
    ctx = engine.tokenizer.encode(CONTEXT)
    cont, decode_lps = _greedy_continuation(engine, ctx, 4)
    other = engine.tokenizer.encode(" Berlin, Germany")
    r = httpx.post(f"{url}/v1/completions", json=lm_eval_payload([ctx + cont, ctx + other]), timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    [(ll_greedy, is_greedy), (ll_other, other_greedy)] = lm_eval_parse(out, [len(ctx), len(ctx)])
    assert ll_greedy == pytest.approx(sum(decode_lps), abs=1e-3) and is_greedy
    assert ll_other < ll_greedy and not other_greedy
    choice = out["choices"][0]["logprobs"]
    n = len(ctx) + len(cont)
    assert len(choice["tokens"]) == len(choice["token_logprobs"]) == n + 1  # the prompt, then one token
    assert choice["token_logprobs"][0] is None and choice["top_logprobs"][0] is None
    assert choice["token_logprobs"][len(ctx):n] == pytest.approx(decode_lps, abs=1e-3)
    assert out["usage"]["prompt_tokens"] == n + len(ctx) + len(other) and out["usage"]["completion_tokens"] == 2


def test_echo_with_max_tokens_1_generates_the_greedy_token(server):
    url, engine = server
    ctx = engine.tokenizer.encode(CONTEXT)
    [first], [first_lp] = _greedy_continuation(engine, ctx, 1)
    r = client(url, timeout=120).completions.create(model=MODEL, prompt=CONTEXT, echo=True, logprobs=3, max_tokens=1)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == CONTEXT + engine.tokenizer.decode([first])
    assert lp.token_logprobs[-1] == pytest.approx(first_lp, abs=1e-4)
    assert all(len(top) >= 3 for top in lp.top_logprobs[1:])


def test_echo_max_tokens_0_scores_only_the_prompt(server):
    url, engine = server
    r = client(url, timeout=120).completions.create(model=MODEL, prompt=CONTEXT, echo=True, logprobs=0, max_tokens=0)
    lp = r.choices[0].logprobs
    ids = engine.tokenizer.encode(CONTEXT)
    assert r.choices[0].text == CONTEXT and len(lp.tokens) == len(ids) and "".join(lp.tokens) == CONTEXT
    assert lp.token_logprobs[0] is None and all(v < 0 for v in lp.token_logprobs[1:])
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == 0


def test_prompt_longer_than_the_context_is_400_with_the_numbers(server):
    url, engine = server
    limit = engine.max_positions
    words = "hello " * (limit + 100)
    r = httpx.post(f"{url}/v1/chat/completions", timeout=120,
                   json={"model": MODEL, "messages": [{"role": "user", "content": words}]})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    m = re.match(r"the prompt is (\d+) tokens; this model's context is (\d+) tokens", err["message"])
    assert m and int(m.group(1)) > limit + 100 and int(m.group(2)) == limit
    r = httpx.post(f"{url}/v1/completions", timeout=120,
                   json={"model": MODEL, "prompt": [[1] * (limit + 1)], "echo": True, "max_tokens": 0})
    assert r.status_code == 400 and f"the prompt is {limit + 1} tokens" in r.json()["error"]["message"]
    vocab = engine.model.config.vocab_size
    r = httpx.post(f"{url}/v1/completions", timeout=120,
                   json={"model": MODEL, "prompt": [[1, vocab]], "echo": True, "max_tokens": 0})
    assert r.status_code == 400 and "out of range" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "prompt"
    assert not engine.has_work()


def test_tokenizer_info_of_a_real_model(server):
    """lm-eval's RemoteTokenizer reads eos/bos/pad tokens and the chat template here."""
    url, engine = server
    info = httpx.get(f"{url}/tokenizer_info").json()
    hf = engine.tokenizer.hf
    assert info["eos_token"] == hf.eos_token and info["eos_token"]
    assert info["chat_template"] == hf.chat_template and info["model_max_length"] == engine.max_positions
    r = httpx.post(f"{url}/tokenize", json={"prompt": CONTEXT, "add_special_tokens": False}).json()
    assert r["tokens"] == engine.tokenizer.encode(CONTEXT)
    assert httpx.post(f"{url}/detokenize", json={"tokens": r["tokens"]}).json()["prompt"] == CONTEXT

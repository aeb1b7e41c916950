"""lm-evaluation-harness's `local-completions` against the server, end to end (issue 17
items 10 and 13): it auto-detects the server's tokenizer from `/tokenizer_info` +
`/tokenize` (no hub tokenizer), scores loglikelihood requests through `echo`, and
generates; with `--api-key` given as docs/serve.md says (OPENAI_API_KEY + auth_token).
Skipped where lm-eval is not installed (`pip install -e .[clients]`)."""
from __future__ import annotations

import pytest

from parareason.server import ServeDefaults, create_app
from tests.support.server_harness import serve_in_thread

lm_eval_models = pytest.importorskip("lm_eval.models.openai_completions")
Instance = pytest.importorskip("lm_eval.api.instance").Instance

MODEL = "smollm2-135m"
KEY = "sk-lm-eval"
CTX = "The capital of France is"


@pytest.fixture(scope="module")
def lm(engine):
    app = create_app(engine, ServeDefaults(model_id=MODEL, n=1, max_new_tokens=8, seed=0), api_key=KEY)
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", KEY)  # lm-eval's request header
    with serve_in_thread(app) as url:
        yield lm_eval_models.LocalCompletionsAPI(base_url=f"{url}/v1/completions", model=MODEL, auth_token=KEY,
                                                 num_concurrent=1, max_retries=1), engine
    mp.undo()


def test_lm_eval_uses_the_servers_tokenizer(lm):
    api, engine = lm
    assert api.tokenizer_backend == "remote"  # found /tokenizer_info and /tokenize: no hub download
    assert api.tok_encode(CTX) == engine.tokenizer.encode(CTX)
    assert api.tokenizer.eos_token == engine.tokenizer.hf.eos_token


def test_lm_eval_loglikelihood_and_generation(lm):
    api, engine = lm
    reqs = [Instance("loglikelihood", {}, (CTX, " Paris"), 0), Instance("loglikelihood", {}, (CTX, " a banana"), 1)]
    (paris, paris_greedy), (banana, banana_greedy) = api.loglikelihood(reqs)
    ctx, cont = engine.tokenizer.encode(CTX), engine.tokenizer.encode(" Paris")
    expected = sum(engine.score_prompt(ctx + cont).logprobs[len(ctx) - 1:])
    assert paris == pytest.approx(expected, abs=1e-4) and paris_greedy
    assert banana < paris and not banana_greedy
    [text] = api.generate_until([Instance("generate_until", {}, ("What is 2+2?", {"until": ["\n\n"],
                                                                                  "max_gen_toks": 8}), 0)])
    assert text.strip() and "\n\n" not in text

"""Issue 17 items 12, 13 and 3 (scripted backend): the optional API key, the tokenizer
endpoints lm-eval's `local-completions` probes, and a prompt longer than the
backend's context refused before it is scheduled."""
from __future__ import annotations

import httpx
import openai
import pytest
from click.testing import CliRunner

from parareason.cli.main import main
from parareason.cli.serve_cmd import exposure_warning
from tests.support.server_harness import MODEL, client, scripted_server

Q = [{"role": "user", "content": "What is 2+2?"}]
KEY = "sk-test-123"


@pytest.fixture(scope="module")
def server():
    with scripted_server(api_key=KEY, max_positions=2000) as s:
        yield s


def test_api_key_is_required_as_a_bearer_token(server):
    url, backend, _ = server
    assert client(url, api_key=KEY).chat.completions.create(model=MODEL, messages=Q).choices[0].message.content
    before = len(backend.submitted)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        r = httpx.post(f"{url}/v1/chat/completions", headers=headers, json={"model": MODEL, "messages": Q})
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "invalid_api_key" and r.headers["www-authenticate"] == "Bearer"
        assert r.headers["x-request-id"]
    with pytest.raises(openai.AuthenticationError):
        client(url, api_key="nope").models.list()
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/tokenizer_info").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200  # liveness probes need no key
    assert len(backend.submitted) == before


def test_api_key_from_the_environment_and_exposure_warning():
    r = CliRunner().invoke(main, ["serve", "--policy", "nope"], env={"PARAREASON_API_KEY": "   "})
    assert r.exit_code == 2 and "--api-key" in r.output  # the variable is read (and an empty key refused)
    assert "PARAREASON_API_KEY" in CliRunner().invoke(main, ["serve", "--help"]).output
    for host in ("0.0.0.0", "::", "192.168.1.5", "my-host"):
        assert "without --api-key" in exposure_warning(host, None)
        assert exposure_warning(host, KEY) is None
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_warning(host, None) is None


def lm_eval_probe(url: str, headers: dict) -> bool:
    """lm_eval.utils.check_remote_tokenizer_support, in effect."""
    info = httpx.get(f"{url}/tokenizer_info", headers=headers)
    if info.status_code != 200 or "eos_token" not in info.json():
        return False
    tok = httpx.post(f"{url}/tokenize", json={"prompt": "test", "add_special_tokens": False}, headers=headers)
    return tok.status_code == 200 and isinstance(tok.json().get("tokens"), list)


def test_tokenizer_endpoints_in_the_shape_lm_eval_expects(server):
    url, backend, _ = server
    auth = {"Authorization": f"Bearer {KEY}"}
    assert lm_eval_probe(url, auth)
    info = httpx.get(f"{url}/tokenizer_info", headers=auth).json()
    assert info["model_max_length"] == 2000 and {"bos_token", "pad_token", "chat_template"} <= set(info)
    text = "What is 2+2?"
    tokens = httpx.post(f"{url}/tokenize", json={"prompt": text}, headers=auth).json()
    assert tokens["tokens"] == backend.tokenizer.encode(text) and tokens["count"] == len(text)
    back = httpx.post(f"{url}/detokenize", json={"tokens": tokens["tokens"]}, headers=auth).json()
    assert back == {"prompt": text}
    assert httpx.post(f"{url}/detokenize", json={"tokens": ["x"]}, headers=auth).status_code == 400


def test_prompt_longer_than_the_context_is_refused_before_scheduling(server):
    url, backend, _ = server
    c = client(url, api_key=KEY)
    before = len(backend.submitted)
    for call in (lambda: c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 2500}]),
                 lambda: c.completions.create(model=MODEL, prompt="y" * 2500)):
        with pytest.raises(openai.BadRequestError) as e:
            call()
        err = e.value.body
        assert err["code"] == "context_length_exceeded" and "this model's context is 2000 tokens" in err["message"]
        assert int(err["message"].split()[3]) > 2500  # "the prompt is N tokens": the chat template included
    assert len(backend.submitted) == before  # nothing reached the backend
    assert c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 500}]).choices


def test_token_id_prompts_generate_like_their_text(server):
    """lm-eval with the remote tokenizer sends generation prompts as token ids."""
    url, backend, _ = server
    c = client(url, api_key=KEY)
    ids = backend.tokenizer.encode("What is 3+3?")
    by_ids = c.completions.create(model=MODEL, prompt=ids, seed=5)
    by_text = c.completions.create(model=MODEL, prompt="What is 3+3?", seed=5)
    assert by_ids.choices[0].text == by_text.choices[0].text and "3+3" in by_ids.choices[0].text
    batch = httpx.post(f"{url}/v1/completions", headers={"Authorization": f"Bearer {KEY}"},
                       json={"model": MODEL, "prompt": [ids, ids]})
    assert batch.status_code == 400 and "one prompt per generation request" in batch.json()["error"]["message"]

"""`"parareason": {"protocol_args": {...}}` and `serve --protocol-arg`: protocol options
(the trained dialects) reach the protocol; a bad one is a 400 naming the field."""
from __future__ import annotations

import openai
import pytest

from tests.support.server_harness import MODEL, client, scripted_server


def _contexts(backend) -> list[str]:
    return [backend.tokenizer.decode(r.input_ids) for r in backend.submitted]


def test_protocol_args_pick_the_trained_dialect_per_request():
    with scripted_server(n=1) as (url, backend, _):
        c = client(url)
        body = {"parareason": {"protocol": "parathinker", "protocol_args": {"n_paths": 2}}}
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}], extra_body=body)
        prompted = _contexts(backend)
        backend.submitted.clear()
        body["parareason"]["protocol_args"]["dialect"] = "trained"
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}], extra_body=body)
        trained = _contexts(backend)
    assert prompted and trained and set(prompted).isdisjoint(trained)  # another format on the wire
    assert any("<think1>" in t for t in trained) and not any("<think1>" in t for t in prompted)


@pytest.mark.parametrize("args", [{"dialect": "ancient"}, {"n_paths": 0}, {"no_such_option": 1}])
def test_a_bad_protocol_arg_is_a_400_naming_the_field(args):
    with scripted_server() as (url, _, _):
        with pytest.raises(openai.BadRequestError) as e:
            client(url).chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "2+2?"}],
                extra_body={"parareason": {"protocol": "parathinker", "protocol_args": args}})
    assert e.value.status_code == 400 and e.value.body["param"] == "parareason.protocol_args"


def test_server_default_protocol_args_apply_to_its_default_protocol():
    with scripted_server(n=1, protocol="parathinker", protocol_args={"dialect": "trained", "n_paths": 2}) as (
            url, backend, _):
        client(url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}])
        assert any("<think1>" in t for t in _contexts(backend))


def test_a_request_switching_dialect_keeps_only_the_server_options_its_dialect_takes():
    # before: finish_ratio (trained only) was carried into the prompted dialect: a 400
    served = {"dialect": "trained", "n_paths": 2, "finish_ratio": 0.5}
    with scripted_server(n=1, protocol="parathinker", protocol_args=served) as (url, backend, _):
        c = client(url)
        body = {"parareason": {"protocol_args": {"dialect": "prompted"}}}
        r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}], extra_body=body)
        d = r.model_extra["parareason"]
        assert len(d["threads"]) == 3  # n_paths=2 (both dialects take it) + the summary
        assert not any("<think1>" in t for t in _contexts(backend))
        backend.submitted.clear()
        # without a dialect of its own the request gets the server's, options and all
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "2+2?"}])
        assert any("<think1>" in t for t in _contexts(backend))

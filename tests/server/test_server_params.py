"""Policy parameter values from a client are checked before any work: 400 naming the
parameter (issue 17 item 4; the server answered 500 for `k: "abc"`)."""
from __future__ import annotations

import openai
import pytest

from tests.support.server_harness import MODEL, client, scripted_server

Q = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(scope="module")
def server():
    with scripted_server() as s:
        yield s


def _bad(url, stream=False, **parareason):
    with pytest.raises(openai.BadRequestError) as e:
        out = client(url).chat.completions.create(model=MODEL, messages=Q, stream=stream,
                                                  extra_body={"parareason": parareason})
        if stream:
            list(out)
    assert e.value.status_code == 400 and e.value.body["type"] == "invalid_request_error"
    return e.value.body["message"]


@pytest.mark.parametrize("policy,args,fragment", [
    ("ffs", {"k": "abc"}, "'k' must be an integer, got 'abc'"),
    ("ffs", {"k": -3}, "'k' must be >= 1, got -3"),
    ("deepconf", {"keep_percent": 0}, "'keep_percent' must be > 0 and <= 100"),
    ("multi_temp", {"temperatures": ["hot"]}, "'temperatures' must be a non-empty list"),
    ("sc", {"inner": "ffs", "inner_params": {"k": 0}}, "policy 'ffs': parameter 'k' must be >= 1"),
])
def test_bad_policy_parameter_values_are_400(server, policy, args, fragment):
    url, _, _ = server
    assert fragment in _bad(url, policy=policy, policy_args=args)
    assert fragment in _bad(url, stream=True, policy=policy, policy_args=args)


def test_good_values_still_run(server):
    url, _, _ = server
    out = client(url).chat.completions.create(model=MODEL, messages=Q,
                                              extra_body={"parareason": {"policy": "ffs", "n": 2,
                                                                         "policy_args": {"k": 1}}})
    assert out.choices[0].message.content

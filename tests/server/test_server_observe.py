"""The server's ObservedPolicy wrapper stands for the real policy: same width, so a served
request gets the same default token cap as the run and the API give it."""
from __future__ import annotations

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.policies import make_policy
from parareason.runtime.limits import Limits
from parareason.runtime.policy import policy_width
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from parareason.server.observe import ObservedPolicy


def test_an_observed_policy_is_as_wide_as_its_inner_policy():
    for inner in (make_policy("sc", n=5), make_policy("deepprune", n=6), make_policy("scale", n=3)):
        assert policy_width(ObservedPolicy(inner)) == policy_width(inner) == inner.width > 1


def test_an_observed_request_is_capped_at_max_tokens_x_width():
    # no budget: the cap is max_new_tokens x width x request_tokens_per_sample = 10 x 4 x 1
    backend = ScriptedBackend(lambda ctx: "x" * 50, tokens_per_step=2)
    spec = RequestSpec(id="q", prompt="What is 2+2?", policy=ObservedPolicy(make_policy("sc", n=4)),
                       params=SamplingParams(max_new_tokens=10, seed=0), limits=Limits(request_tokens_per_sample=1))
    [result] = list(Scheduler(backend).run([spec]))
    assert result.error is None and len(result.threads) == 4
    assert result.usage["generated_tokens"] == 40  # each sample to its own cap, none cut by the request's

"""A request whose every sample failed carries an error (issue 17 item 3): a prompt
longer than the model's context used to end with threads `failed`, `error` null and
0 errors in the summary."""
from __future__ import annotations

import re

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.io.summary import summarize
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from tests.support.runtime_policies import LaunchN


def run_all(backend, prompts, n=2, max_new_tokens=4):
    specs = [RequestSpec(id=f"r{i}", prompt=p, policy=LaunchN(n),
                         params=SamplingParams(seed=1, max_new_tokens=max_new_tokens)) for i, p in enumerate(prompts)]
    return {r.id: r for r in Scheduler(backend).run(specs, max_concurrent=len(specs))}


def test_a_prompt_longer_than_the_context_fails_the_row_with_the_counts(engine):
    limit = engine.max_positions
    results = run_all(engine, ["word " * (limit + 10), "What is 2+2?"])
    long, ok = results["r0"], results["r1"]
    assert all(t.status == "failed" for t in long.threads)
    assert long.error is not None and long.error.startswith("every sample failed: ")
    m = re.search(r"context of (\d+) tokens .* model's (\d+) max positions", long.error)
    assert m and int(m.group(1)) > limit and int(m.group(2)) == limit, long.error
    assert ok.error is None and all(t.status != "failed" for t in ok.threads)  # the other row is unharmed
    assert summarize("sc", [long, ok], wall_s=1.0).errors == 1


def script(ctx):
    if "bad" in ctx.text:
        raise RuntimeError("simulated: prompt refused")
    return "\\boxed{2}"


def odd_seeds_fail(ctx):
    if ctx.params.seed % 2:
        raise RuntimeError("boom")
    return "\\boxed{2}"


def test_only_a_request_whose_every_sample_failed_is_an_error():
    results = run_all(ScriptedBackend(script), ["a bad prompt", "a good prompt"], max_new_tokens=20)
    assert results["r0"].error == "every sample failed: backend error: RuntimeError: simulated: prompt refused"
    assert results["r1"].error is None and results["r1"].answer == "2"
    [mixed] = run_all(ScriptedBackend(odd_seeds_fail), ["q"], n=6, max_new_tokens=20).values()
    assert {t.status for t in mixed.threads} == {"failed", "finished"}  # some samples answered
    assert mixed.error is None and mixed.answer == "2"

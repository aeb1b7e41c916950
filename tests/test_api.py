"""Python API: parareason.run / Engine / arun on the ScriptedBackend test double."""
from __future__ import annotations

import asyncio
import json
import os
import runpy
import sys

import pytest

import parareason
from parareason import api
from parareason.runtime.driver import policy_width
from parareason.io.prompts import PromptInputError
from parareason.policies import make_policy
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.result import Result

from tests.support.paths import ROOT
TABLE = {"apples": "3 + 5 = 8, so \\boxed{8}.", "pencils": "12 * 4 = 48, \\boxed{48}",
         "cookies": "30 - 12 = 18. \\boxed{18}"}


@pytest.fixture
def loads(monkeypatch):
    """Count backend loads; every load gets a fresh scripted backend."""
    calls: list[tuple] = []

    def fake_load(backend="embedded", model=api.DEFAULT_MODEL, urls=(), **opts):
        calls.append((backend, model))
        return ScriptedBackend.from_table(TABLE, default="no idea \\boxed{0}", tokens_per_step=4)

    monkeypatch.setattr(api, "load_backend", fake_load)
    return calls


def examples():
    return [json.loads(line) for line in (ROOT / "examples/prompts.jsonl").read_text().splitlines()]


def test_engine_loads_once_and_is_reused_across_calls_and_policies(loads):
    engine = parareason.Engine(model="some-model")
    first = engine.run(examples(), policy="sc", n=3)
    second = engine.run(examples(), policy="ffs", n=2, max_concurrent=2)
    assert loads == [("embedded", "some-model")]
    assert [r.id for r in first] == [r.id for r in second] == [e["id"] for e in examples()]
    assert all(isinstance(r, Result) for r in first + second)
    assert [r.correct for r in first] == [True, True, True, False, False]
    assert {r.policy for r in first} == {"self_consistency"} and {r.policy for r in second} == {"ffs"}
    assert len(first[0].threads) == 3 and len(second[0].threads) == 2
    assert all(r.usage["generated_tokens"] > 0 for r in first)


def test_run_accepts_strings_dicts_and_policy_instances(loads):
    policy = make_policy("sc", n=2)
    results = parareason.run(["How many apples? 3+5", {"id": "c", "question": "cookies?", "answer": "18", "n": 4}],
                             policy=policy, model="m")
    assert [r.id for r in results] == ["prompt-1", "c"]
    assert results[0].answer == "8" and results[0].correct is None
    assert results[1].correct is True and len(results[1].threads) == 2  # the instance fixes n=2
    assert policy.params.n == 2  # the caller's instance is copied, never mutated by a run
    single = parareason.run("apples?", model="m", policy="sc", n=1)
    assert len(single) == 1 and single[0].answer == "8"


def test_per_row_overrides_and_results_match_jsonl_contract(loads):
    engine = parareason.Engine()
    [r] = engine.run([{"id": "p", "prompt": "pencils", "answer": 48, "n": 5, "policy": "ffs"}], policy="sc")
    assert r.policy == "ffs" and r.reference == "48" and r.correct is True
    assert Result.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_same_seed_same_results_independent_of_batching(loads):
    engine = parareason.Engine()
    a = engine.run(examples(), n=3, max_concurrent=1, seed=7)
    b = engine.run(examples()[::-1], n=3, max_concurrent=5, seed=7)[::-1]
    strip = lambda rs: [(r.id, r.answer, [t.tokens for t in r.threads]) for r in rs]  # noqa: E731
    assert strip(a) == strip(b)


def test_bad_prompts_raise_before_any_work(loads):
    engine = parareason.Engine()
    with pytest.raises(PromptInputError, match="prompts:2: missing 'prompt'"):
        engine.run(["fine", {"answer": "1"}])
    with pytest.raises(ValueError, match="unknown policy"):
        engine.run(["fine"], policy="nope")


def test_arun_keeps_the_event_loop_free(loads):
    engine = parareason.Engine()

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        results = await engine.arun(examples(), n=2)
        t.cancel()
        return results, ticks

    results, ticks = asyncio.run(main())
    assert [r.id for r in results] == [e["id"] for e in examples()] and ticks > 0


def test_callbacks_report_progress_and_each_result_once(loads):
    engine = parareason.Engine()
    seen, steps = [], []
    engine.run(examples(), n=2, on_result=lambda r: seen.append(r.id), on_step=steps.append)
    assert sorted(seen) == sorted(e["id"] for e in examples())
    assert steps and steps[-1]["live_threads"] == 0
    assert max(s["live_threads"] for s in steps) > 2  # requests shared backend steps
    assert steps[-1]["generated_tokens"] > 0


def test_eval_loop_example_runs(monkeypatch, capsys):
    monkeypatch.setenv("PARAREASON_SCRIPTED_TABLE", json.dumps(TABLE))
    monkeypatch.setattr(sys, "argv", ["eval_loop.py", str(ROOT / "examples/prompts.jsonl"), "unused", "scripted"])
    runpy.run_path(str(ROOT / "examples/eval_loop.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "sc: accuracy 60%" in out and "ffs: accuracy 60%" in out


def test_lazy_public_api():
    import subprocess

    code = "import sys, parareason; assert 'torch' not in sys.modules; parareason.Engine; print('ok')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert res.stdout.strip() == "ok", res.stderr


def test_drive_scheduler_tells_the_backend_how_wide_the_batch_will_be():
    hints: list[int] = []
    backend = ScriptedBackend.from_table(TABLE, default="\\boxed{0}", tokens_per_step=4)
    backend.expect_concurrency = hints.append  # type: ignore[method-assign]
    with api.Engine(backend=backend) as engine:
        engine.run(["apples", "pencils", "cookies"], policy="sc", n=5, max_concurrent=2)
    assert hints == [10]  # 2 requests in flight x 5 samples each
    assert policy_width(make_policy("deepprune", n=6)) == 6
    assert policy_width(object()) == 1

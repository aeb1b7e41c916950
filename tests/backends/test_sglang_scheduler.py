"""Every protocol and policy runs unchanged through the scheduler on SGLangBackend.

The model side is the SGLang stand-in (real HTTP) over `ScriptedBackend` (the shared
test double): each request is run twice, once on the test double directly and once
through client -> HTTP -> stand-in -> the same kind of test double, and the two
Results must agree.
"""
from __future__ import annotations

import re

import pytest

from parareason.policies import POLICY_NAMES, make_policy
from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptContext, ScriptedBackend
from parareason.backends.sglang import load_sglang_backend
from parareason.runtime.limits import Limits
from parareason.runtime.protocols import get_protocol, protocol_names
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result
from parareason.runtime.scheduler import Scheduler
from parareason.testing.sglang_standin import SGLangStandin

# Replies differ in length and wording per sample but agree on the answer, so policies
# that race samples (first-finish, early stopping) reach the same answer over HTTP,
# where arrival order may differ from the in-process double.
REPLIES = [
    "Two plus two. \\boxed{4}",
    "Adding 2 and 2 gives 4, so \\boxed{4}",
    "2+2=4 \\boxed{4}",
    "Count: 1, 2, 3, 4. The answer is \\boxed{4}",
]


def _script(ctx: ScriptContext) -> str:
    m = re.search(r"\|s(\d+)\.", ctx.seq_id)
    return REPLIES[int(m.group(1)) % len(REPLIES)] if m else REPLIES[0]


def _loadable_protocols() -> list[str]:
    names = []
    for name in protocol_names():
        try:
            get_protocol(name)
        except (ImportError, ModuleNotFoundError):
            continue  # registered but not written yet
        names.append(name)
    return names


_FAST = {"deepprune": {"judge": "answer"}}  # no embedding model in a transport test


def _spec(policy: str, protocol: str) -> RequestSpec:
    return RequestSpec(id="q", prompt="What is 2+2?", policy=make_policy(policy, **_FAST.get(policy, {})),
                       protocol=protocol,
                       params=SamplingParams(temperature=0.7, max_new_tokens=80, seed=0),
                       limits=Limits(deadline_s=60), reference="4")  # a runaway ends, never hangs


def _run(backend, policy: str, protocol: str) -> Result:
    [result] = list(Scheduler(backend).run([_spec(policy, protocol)]))
    return result


# Every policy (on the plain protocol) and every protocol (under self-consistency): the
# union covers each one while keeping the suite short; the full cross product passed too
# (28 cases, ~35 s on 2 cores) when this test was written.
CASES = [(p, "plain") for p in POLICY_NAMES] + [("self_consistency", pr) for pr in _loadable_protocols() if pr != "plain"]


@pytest.mark.parametrize(("policy", "protocol"), CASES)
def test_policy_and_protocol_run_unchanged_over_sglang(policy, protocol):
    direct = _run(ScriptedBackend(_script, tokens_per_step=4), policy, protocol)
    with SGLangStandin(ScriptedBackend(_script, tokens_per_step=4)) as srv:
        with load_sglang_backend(srv.url, ScriptedBackend(_script).tokenizer, stall_timeout_s=20,
                                 request_timeout_s=60) as backend:
            via = _run(backend, policy, protocol)
        assert srv.generate_requests, "nothing reached the server"
        assert all("input_ids" in b and "text" not in b for b in srv.generate_requests)
    assert direct.error is None and via.error is None, (direct.error, via.error)
    assert via.answer == direct.answer and via.correct is True
    assert via.policy == direct.policy and via.protocol == direct.protocol
    assert {t.status for t in via.threads} <= {"finished", "pruned", "cancelled", "limit"}
    assert via.usage["generated_tokens"] > 0
    assert via.usage["prompt_tokens"] == via.usage["cached_tokens"] + via.usage["prefill_computed_tokens"]
    if policy == "self_consistency":  # no racing: the very same threads and token counts
        assert sorted((t.id, t.tokens, t.answer) for t in via.threads) == \
            sorted((t.id, t.tokens, t.answer) for t in direct.threads)
        assert via.usage["generated_tokens"] == direct.usage["generated_tokens"]

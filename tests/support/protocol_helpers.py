"""Shared helpers of the protocol tests (scripted backend, one-request runs)."""
from __future__ import annotations

from parareason.backends.base import SamplingParams
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from tests.support.runtime_policies import LaunchN


def run_protocol(script, protocol, *, prompt="Solve it.", n=1, config=None, tokens_per_step=3,
                 limits=None, max_new_tokens=400, system_prompt=None):
    be = ScriptedBackend(script, tokens_per_step=tokens_per_step)
    sched = Scheduler(be)
    spec = RequestSpec(id="r", prompt=prompt, policy=LaunchN(n), protocol=protocol, protocol_config=config or {},
                       params=SamplingParams(seed=5, max_new_tokens=max_new_tokens), limits=limits or Limits(),
                       system_prompt=system_prompt)
    [r] = list(sched.run([spec]))
    assert sched.trie.live_nodes() == 0
    assert r.error is None, r.error
    assert all(t.status in ("finished", "pruned", "cancelled", "failed", "limit") for t in r.threads)
    return r, be


def contexts(be, thread_id):
    """Decoded contexts the backend got for one thread, in submission order."""
    return [be.tokenizer.decode(q.input_ids) for q in be.submitted if q.seq_id.split("|")[1] == thread_id]

"""Protocols cope with backends whose last token runs past a stop marker, or drops it."""
from parareason.backends.base import FINISH_STOP_STRING
from parareason.backends.scripted import ScriptedBackend
from parareason.runtime.protocols import get_protocol
from tests.support.protocol_helpers import contexts, run_protocol
from tests.runtime.test_protocol_apr import apr_script
from tests.runtime.test_protocol_parathinker import pt_script
from tests.runtime.test_protocol_threadweaver import tw_script


class Overshoot(ScriptedBackend):
    """The token that completes a stop string also carries a trailing newline (like a BPE token)."""

    def _advance(self, seq):
        u = super()._advance(seq)
        if u.finish_reason == FINISH_STOP_STRING:
            u.token_ids.append(self.tokenizer.encode("\n")[0])
            u.logprobs.append(-0.1)
        return u


class DropsMarker(ScriptedBackend):
    """Reports the stop string as matched but leaves its tokens out (like a trimming server)."""

    def _advance(self, seq):
        u = super()._advance(seq)
        if u.finish_reason == FINISH_STOP_STRING:
            n = len(self.tokenizer.encode(u.matched_stop))
            kept = max(0, len(u.token_ids) - n)
            u.token_ids, u.logprobs = u.token_ids[:kept], u.logprobs[:kept]
        return u


def _patched(monkeypatch, cls):
    monkeypatch.setattr("tests.support.protocol_helpers.ScriptedBackend", cls)


def test_apr_with_overshooting_and_trimming_backends(monkeypatch):
    for cls in (Overshoot, DropsMarker):
        _patched(monkeypatch, cls)
        r, be = run_protocol(apr_script, "apr", tokens_per_step=100)
        assert [t.status for t in r.threads] == ["finished"] * 3, cls
        assert r.answer == "20"
        assert "</spawn>" in contexts(be, "s0.t0")[1]


def test_threadweaver_with_overshooting_and_trimming_backends(monkeypatch):
    for cls in (Overshoot, DropsMarker):
        _patched(monkeypatch, cls)
        r, be = run_protocol(tw_script, "threadweaver", tokens_per_step=100)
        assert [t.reason for t in r.threads] == ["eos", "thread_closed", "thread_closed"], cls
        resumed = contexts(be, "s0.t0")[1].split("<|assistant|>")[-1]
        assert resumed.count("</Thread>") == 2 and resumed.endswith("</Parallel>\n")


def test_parathinker_with_overshooting_and_trimming_backends(monkeypatch):
    for cls in (Overshoot, DropsMarker):
        _patched(monkeypatch, cls)
        r, be = run_protocol(pt_script, "parathinker", config={"n_paths": 2}, tokens_per_step=100)
        assert [t.reason for t in r.threads[:2]] == ["path_closed"] * 2, cls
        assert contexts(be, r.threads[2].id)[0].split("<|assistant|>")[-1].count("</think>") == 2


def test_instructions_name_the_configured_markers():
    assert "<spawn>" in get_protocol("apr").instructions
    assert "<Outlines>" in get_protocol("threadweaver").instructions
    assert "<summary>" in get_protocol("parathinker").instructions
    msgs = get_protocol("plain").messages("q", "my system")
    assert msgs == [{"role": "system", "content": "my system"}, {"role": "user", "content": "q"}]

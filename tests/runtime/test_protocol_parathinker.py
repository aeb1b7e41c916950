from parareason.runtime.limits import Limits
from parareason.runtime.protocols import get_protocol
from tests.support.protocol_helpers import contexts, run_protocol


def pt_script(ctx):
    said = ctx.assistant_text
    if said.endswith("<summary>\n"):
        return "Paths agree: \\boxed{12}</summary>"
    k = said.split("path=")[1][0]
    return f"path {k} thinks \\boxed{{1{k}}}</think>"


def test_paths_then_summary_with_all_paths_in_context():
    r, be = run_protocol(pt_script, "parathinker", config={"n_paths": 3})
    paths, summary = r.threads[:3], r.threads[3]
    assert all(t.reason == "path_closed" for t in paths) and summary.reason == "stop:</summary>"
    assert r.answer == "12"  # from the summary, not from the paths' own answers
    ctx = contexts(be, summary.id)[0]
    for k in (1, 2, 3):
        assert f"<think path={k}>\npath {k} thinks \\boxed{{1{k}}}</think>\n" in ctx
    assert ctx.endswith("</think>\n<summary>\n")
    # the three paths share the prompt: one prefill, then cache hits
    assert r.usage["cached_tokens"] > 0


def test_path_cut_by_limit_still_summarised():
    r, be = run_protocol(lambda c: "S \\boxed{3}</summary>" if c.assistant_text.endswith("<summary>\n") else "z" * 100,
                         "parathinker", config={"n_paths": 2}, limits=Limits(tokens_per_thread=30))
    assert [t.reason for t in r.threads[:2]] == ["limit:tokens_per_thread"] * 2
    assert r.threads[2].status == "finished" and r.answer == "3"
    assert contexts(be, r.threads[2].id)[0].count("z" * 30 + "</think>") == 2  # runtime closed each path


def test_max_live_threads_caps_paths():
    r, _ = run_protocol(pt_script, "parathinker", config={"n_paths": 4}, limits=Limits(max_live_threads=2))
    assert [t.status for t in r.threads[:4]] == ["finished", "finished", "limit", "limit"]
    assert r.answer == "12"


def test_config_checked():
    import pytest
    with pytest.raises(ValueError):
        get_protocol("parathinker", n_paths=0)
    with pytest.raises(ValueError):
        get_protocol("parathinker", colour="red")
    with pytest.raises(ValueError):
        get_protocol("nope")

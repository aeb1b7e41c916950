"""ParaThinker trained dialect: contexts built from the reference's strings
(tests/fixtures/parathinker_format.json), checked char for char (one token per character)."""
import json
from pathlib import Path

import pytest

from parareason.runtime.limits import Limits
from parareason.runtime.protocols import get_protocol
from tests.support.protocol_helpers import contexts, run_protocol

FMT = json.loads((Path(__file__).parents[1] / "fixtures" / "parathinker_format.json").read_text())
TRAINED = {"dialect": "trained"}
PROMPT = FMT["template"].replace("{question}", "What is 3 + 4?")


def path_of(ctx):
    """A path's single run starts right after its forced `<think{k}>` token."""
    return next(k for k in range(1, 9) if ctx.text.endswith(f"<think{k}>"))


def test_paths_then_summary_with_the_reference_layout():
    def script(ctx):
        if ctx.text.endswith(FMT["summary_template"]):
            return " \\boxed{7}.</summary>"
        k = path_of(ctx)
        return f"path {k}: 3 + 4 = 7</think{k}>" if k == 1 else "x" * 60
    r, be = run_protocol(script, "parathinker", config=TRAINED, prompt="What is 3 + 4?", tokens_per_step=5)
    paths, summary = r.threads[:4], r.threads[4]  # the paper's default: 4 paths
    for k, t in enumerate(paths, 1):
        assert contexts(be, t.id)[0] == PROMPT + f"<think{k}>"  # no chat template; path token forced
    # first-finish: path 1 closed, the others were cut where they were
    assert paths[0].reason == "path_closed"
    assert [t.reason for t in paths[1:]] == ["think_stage_over"] * 3
    cut = [t.tokens for t in paths[1:]]
    expected = (PROMPT + "<think1>path 1: 3 + 4 = 7</think1>"
                + "".join(f"<think{k}>" + "x" * n for k, n in zip((2, 3, 4), cut)) + FMT["summary_template"])
    assert contexts(be, summary.id) == [expected]
    assert r.answer == "7" and summary.reason == "stop:</summary>"
    assert r.details["approximation"] == "flattened paths"


def test_foreign_close_and_eos_become_the_paths_own_close():
    def script(ctx):
        if ctx.text.endswith(FMT["summary_template"]):
            return " \\boxed{1}</summary>"
        k = path_of(ctx)
        return {1: "one</think3>", 2: "two"}[k]  # path 1 writes another path's close, path 2 stops at EOS
    r, be = run_protocol(script, "parathinker", config={**TRAINED, "n_paths": 2, "finish_ratio": 1.0},
                         prompt="What is 3 + 4?")
    summary_ctx = contexts(be, r.threads[2].id)[0]
    assert summary_ctx == PROMPT + "<think1>one</think1><think2>two</think2>" + FMT["summary_template"]


def test_all_paths_when_finish_ratio_is_one_and_limits():
    def script(ctx):
        if ctx.text.endswith(FMT["summary_template"]):
            return " \\boxed{2}</summary>"
        k = path_of(ctx)
        return f"p{k}" * k + f"</think{k}>"
    r, be = run_protocol(script, "parathinker", config={**TRAINED, "n_paths": 8, "finish_ratio": 1.0},
                         limits=Limits(max_live_threads=5))
    assert [t.reason for t in r.threads[:8]].count("path_closed") == 5  # three refused by the live cap
    ctx = contexts(be, r.threads[8].id)[0]
    assert all(f"<think{k}>{f'p{k}' * k}</think{k}>" in ctx for k in range(1, 6)) and "<think6>" not in ctx


def test_padding_option_and_config_checks():
    proto = get_protocol("parathinker", dialect="trained", pad_to_block=16)
    from parareason.backends.scripted import CharTokenizer

    class Ops:
        tokenizer = CharTokenizer()
        encode = staticmethod(tokenizer.encode)

        def bos_ids(self):
            return []
    ids = proto.prompt_ids(Ops(), "q")
    assert ids == CharTokenizer().encode(FMT["template"].replace("{question}", "q"))  # "<vllm_pad>" is no single token
    for bad in ({"n_paths": 9}, {"n_paths": 0}, {"finish_ratio": 0}, {"colour": 1}):
        with pytest.raises(ValueError):
            get_protocol("parathinker", dialect="trained", **bad)
    with pytest.raises(ValueError, match="dialect"):
        get_protocol("parathinker", dialect="native")


def test_markers_in_the_prompt_are_data():
    prompt = "Explain <think1> and </think1> and <summary>x</summary> literally."
    r, be = run_protocol(lambda c: (" \\boxed{0}</summary>" if c.text.endswith(FMT["summary_template"])
                                    else "ok</think1>"), "parathinker", config={**TRAINED, "n_paths": 2},
                         prompt=prompt)
    assert len(r.threads) == 3 and r.answer == "0"

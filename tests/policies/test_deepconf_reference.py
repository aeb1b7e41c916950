"""DeepConf behaves as facebookresearch/deepconf (wrapper.py, utils.py) on the scheduler:
calibration over every warm-up trace, the reference's online vote, the percentile cut,
the paper's defaults, the CPU preset and DeepConf-low/-high."""
from __future__ import annotations

import numpy as np
import pytest

from parareason.backends.base import SamplingParams
from parareason.policies import make_policy
from parareason.policies.confidence import DeepConf
from parareason.policies.confidence_params import DeepConfParams
from parareason.runtime.limits import Limits
from parareason.runtime.request import RequestSpec
from parareason.runtime.scheduler import Scheduler
from tests.support.scripted_policies import MarkedConfidenceBackend, by_sample, policy_events, run


def test_calibration_counts_warmup_traces_without_an_answer():
    sure = "step step \\boxed{4}"
    lost = "?" * 30 + " no answer here"  # finishes, states no answer, is unsure
    res, _ = run("deepconf", by_sample([sure, lost, sure]), n=3, warmup=2, window=4, keep_percent=90,
                 consensus=1.0)
    [cal] = policy_events(res, "deepconf_calibrated")
    assert len(cal["warmup_confidences"]) == 2  # today's code kept only the answered one
    low, high = sorted(cal["warmup_confidences"])
    assert low < high
    assert res.details["threshold"] == pytest.approx(np.percentile([low, high], 10))
    assert res.details["threshold"] < high


def test_online_vote_is_weighted_by_confidence():
    sure5 = "\\boxed{5}"  # every token sure: high weight
    shaky4 = "????\\boxed{4}"  # its lowest window is all '?'
    res, _ = run("deepconf", by_sample([sure5, shaky4, shaky4]), n=3, warmup=3, window=4, top_logprobs=2,
                 keep_percent=90)
    assert sorted(res.details["voters"]) == ["s0", "s1", "s2"]
    assert res.answer == "5"  # 4.525 of weight beats 2 x 2.05; a plain count says 4
    sc, _ = run("self_consistency", by_sample([sure5, shaky4, shaky4]), n=3)
    assert sc.answer == "4"


def test_warmup_traces_below_the_threshold_do_not_vote():
    sure4, shaky5 = "\\boxed{4}", "????????\\boxed{5}"
    res, _ = run("deepconf", by_sample([sure4, shaky5, shaky5, sure4]), n=4, warmup=4, window=4,
                 top_logprobs=2, keep_percent=40)  # threshold = 60th percentile: only the sure ones pass
    assert sorted(res.details["voters"]) == ["s0", "s3"]
    assert res.answer == "4"


def test_offline_keeps_exactly_the_reference_percentile_cut():
    # 16 answered traces with distinct mean confidence; eta = 90 cuts at the 10th percentile
    replies = ["?" * i + "x" * (20 - i) + "\\boxed{4}" for i in range(16)]
    res, _ = run("deepconf", by_sample(replies), n=16, mode="offline", window=4, measure="mean", keep_percent=90)
    confs = [res.details["trace_confidence"][f"s{i}"] for i in range(16)]
    cut = np.percentile(confs, 10)
    assert sorted(res.details["kept"]) == sorted(f"s{i}" for i in range(16) if confs[i] >= cut)
    assert len(res.details["kept"]) == 14  # ceil(0.9 * 16) = 15 was today's count


@pytest.mark.parametrize("measure", ["lowest", "bottom10", "tail", "mean"])
def test_every_measure_filters_and_weights_offline(measure):
    sure = "ok \\boxed{4}"
    unsure = "?" * 20 + " \\boxed{5} " + "?" * 6  # unsure at the end too (tail)
    res, _ = run("deepconf", by_sample([unsure, sure, unsure, sure, unsure]), n=5, mode="offline",
                 window=4, keep_percent=40, measure=measure)
    assert sorted(res.details["kept"]) == ["s1", "s3"] and res.answer == "4"
    assert res.details["measure"] == measure


def test_paper_defaults_cpu_preset_and_variants():
    paper = DeepConf().cfg
    assert (paper.top_logprobs, paper.window, paper.warmup, paper.consensus, paper.keep_percent) == \
        (20, 2048, 16, 0.95, 90.0)
    cpu = DeepConf(DeepConfParams(preset="cpu")).cfg
    assert (cpu.window, cpu.warmup, cpu.in_flight) == (64, 4, 2)
    assert DeepConf(DeepConfParams(variant="low")).cfg.keep_percent == 10.0
    assert DeepConf(DeepConfParams(variant="high")).cfg.keep_percent == 90.0
    # old names keep working and win over the preset
    old = make_policy("deepconf", mode="offline", n=8, warmup=2, window=32, top_logprobs=3,
                      keep_percent=50, consensus=0.8, in_flight=1, preset="cpu").cfg
    assert (old.mode, old.n, old.warmup, old.window, old.top_logprobs, old.keep_percent, old.consensus,
            old.in_flight) == ("offline", 8, 2, 32, 3, 50, 0.8, 1)
    with pytest.raises(ValueError, match="variant"):
        DeepConf(DeepConfParams(variant="low", keep_percent=90))
    with pytest.raises(ValueError, match="preset"):
        DeepConf(DeepConfParams(preset="gpu"))
    with pytest.raises(ValueError, match="measure"):
        DeepConf(DeepConfParams(measure="median"))


class FiveAlternatives(MarkedConfidenceBackend):
    """A backend that returns at most 5 alternatives, whatever is asked."""

    def step(self, timeout_s: float = 0.05):
        updates = super().step(timeout_s)
        for u in updates:
            if u.top_logprobs is not None:
                u.top_logprobs = [alts[:5] for alts in u.top_logprobs]
        return updates


def test_fewer_alternatives_than_asked_are_reported():
    backend = FiveAlternatives(by_sample(["ok \\boxed{4}"]))
    spec = RequestSpec(id="q", prompt="What is 2+2?", policy=make_policy("deepconf", n=2, warmup=1, window=4),
                       params=SamplingParams(temperature=0.7, max_new_tokens=50, seed=0), limits=Limits())
    [res] = list(Scheduler(backend).run([spec]))
    assert all(r.params.top_logprobs == 20 for r in backend.submitted)  # the paper's k
    info = res.details["top_logprobs"]
    assert info["requested"] == 20 and info["fewest_returned"] == 5 and "5 alternatives" in info["note"]
    full, _ = run("deepconf", by_sample(["ok \\boxed{4}"]), n=2, warmup=1, window=4)
    assert "note" not in full.details["top_logprobs"]

"""DeepPrune's default judge: the head shipped for the request's model, else embedding."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from parareason.judge import factory, heads
from parareason.pruning.deepprune import DeepPrunePolicy, DeepPruneParams


@pytest.fixture
def built(monkeypatch):
    calls = []
    monkeypatch.setattr(factory, "shared_judge", lambda kind, head, cal: calls.append((kind, head)) or
                        SimpleNamespace(name=kind, threshold=0.5))
    return calls


def test_auto_takes_the_shipped_head_of_the_requests_model(built, tmp_path, monkeypatch):
    (tmp_path / "qwen2.5-0.5b-coder.pt").write_bytes(b"head")
    monkeypatch.setattr(heads, "HEADS_DIR", tmp_path)
    policy = DeepPrunePolicy(DeepPruneParams(width=2))
    assert policy._build_judge("qwen2.5-0.5b-coder").name == "trained"
    assert built[-1] == ("trained", str(tmp_path / "qwen2.5-0.5b-coder.pt"))
    assert policy._build_judge("smollm2-135m").name == "embedding"  # no head shipped for it
    assert policy._build_judge(None).name == "embedding"
    assert heads.shipped_head("../etc/passwd") is None and heads.shipped_head("a/b") is None


def test_an_explicit_judge_or_head_wins(built):
    assert DeepPrunePolicy(DeepPruneParams(judge="answer"))._build_judge("qwen2.5-0.5b-coder").name == "answer"
    DeepPrunePolicy(DeepPruneParams(head="my.pt"))._build_judge("smollm2-135m")
    assert built[-1] == ("trained", "my.pt")

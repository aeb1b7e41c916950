"""Trained judge: focal loss, oversampling, the training loop on real recorded traces,
and `parareason judge train/eval` end to end (fixture: tests/fixtures/judge/README.md)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from parareason.cli.main import main
from parareason.judge.pairs import build_pairs, load_traces
from parareason.judge.trained import (PairFeaturizer, TrainConfig, TrainedJudge, balanced_indices, focal_loss,
                                      train_head)
from tests.support.paths import FIXTURES

FIXTURE = FIXTURES / "judge" / "gsm8k_smollm2_traces.jsonl"


def test_focal_loss_reduces_to_bce_and_downweights_easy_examples():
    logits = torch.tensor([3.0, -2.0, 0.1, -0.3])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    assert focal_loss(logits, y, gamma=0.0, alpha=0.5) == pytest.approx(0.5 * bce.item(), rel=1e-6)
    easy, hard = torch.tensor([4.0]), torch.tensor([-1.0])
    one = torch.tensor([1.0])
    ratio_focal = focal_loss(easy, one, 2.0) / focal_loss(hard, one, 2.0)
    ratio_bce = focal_loss(easy, one, 0.0) / focal_loss(hard, one, 0.0)
    assert ratio_focal < ratio_bce / 10  # the easy example counts far less under focal loss


def test_oversampling_balances_classes():
    labels = np.array([1] * 30 + [0] * 5, dtype=np.float32)
    idx = balanced_indices(labels, random.Random(0))
    drawn = labels[idx]
    assert (drawn == 1).sum() == (drawn == 0).sum() == 30
    assert set(range(35)) <= set(idx)  # every example appears at least once


@pytest.fixture(scope="module")
def fixture_pairs():
    qs = load_traces(FIXTURE)
    pairs = build_pairs(qs, prefix_chars=(300,), max_pairs_per_question=20)  # short texts: cheap to embed
    labels = np.array([p.label for p in pairs], dtype=np.float32)
    assert 0 < labels.mean() < 1, "fixture must hold both same- and different-answer pairs"
    return pairs, labels


def test_training_reduces_focal_loss_on_fixture(fixture_pairs, tmp_path):
    pairs, labels = fixture_pairs
    from parareason.judge.embedding import shared_encoder

    featurize = PairFeaturizer(shared_encoder())
    x = featurize([(p.a, p.b) for p in pairs], both_orders=True)
    head, history = train_head(x, np.concatenate([labels, labels]), TrainConfig(epochs=15, batch_size=128, hidden=64, seed=0))
    assert history.epoch_loss[-1] < 0.7 * history.epoch_loss[0]
    judge = TrainedJudge(head, featurize.encoder, threshold=0.6, meta={"train_ids": ["a"]})
    a, b = pairs[0].a, pairs[1].b
    s = judge.score(a, b)
    assert 0.0 <= s <= 1.0 and judge.score(b, a) == pytest.approx(s, abs=1e-6)  # symmetric
    judge.save(tmp_path / "h.pt")
    again = TrainedJudge.load(tmp_path / "h.pt")
    assert again.threshold == 0.6 and again.meta["train_ids"] == ["a"]
    assert again.score(a, b) == pytest.approx(s, abs=1e-6)


def test_cli_judge_train_then_eval_on_held_out_questions(tmp_path):
    head, report = tmp_path / "head.pt", tmp_path / "eval.json"
    r = CliRunner().invoke(main, ["judge", "train", str(FIXTURE), "--out", str(head), "--epochs", "3",
                                  "--eval-fraction", "0.3", "--prefix-chars", "150,300"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "focal loss" in r.output and head.exists()
    r = CliRunner().invoke(main, ["judge", "eval", str(FIXTURE), "--head", str(head), "--json-out", str(report)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "AUROC" in r.output
    rep = json.loads(report.read_text())
    meta = TrainedJudge.load(head).meta
    assert rep["n_questions"] == len(meta["eval_ids"]) > 0
    assert not set(meta["eval_ids"]) & set(meta["train_ids"])
    assert rep["n_pairs"] > 0 and set(rep["by_prefix"]) == {"150", "300"}
    assert rep["auroc"] != rep["auroc"] or 0.0 <= rep["auroc"] <= 1.0  # NaN only if one class held out


def test_cli_embedding_calibration_then_eval(tmp_path):
    cal = tmp_path / "cal.json"
    r = CliRunner().invoke(main, ["judge", "train", str(FIXTURE), "--kind", "calibration", "--out", str(cal),
                                  "--prefix-chars", "300"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads(cal.read_text())["fitted_on"] > 0
    r = CliRunner().invoke(main, ["judge", "eval", str(FIXTURE), "--judge", "embedding", "--calibration", str(cal),
                                  "--prefix-chars", "300", "--all-questions"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "judge: embedding" in r.output and "AUROC" in r.output


def test_cli_train_explains_single_class_data(tmp_path):
    f = tmp_path / "same.jsonl"
    rows = [{"id": f"q{i}", "question": "?", "answer": "1",
             "traces": [{"text": f"so {i}", "answer": "1"}, {"text": f"thus {i}", "answer": "1"}]} for i in range(4)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = CliRunner().invoke(main, ["judge", "train", str(f), "--out", str(tmp_path / "h.pt")])
    assert r.exit_code != 0 and "both labels" in r.output


def test_number_features_see_shared_intermediate_results():
    from parareason.judge.trained import number_features

    a = "48 / 2 = 24 clips in May, so 48 + 24 = 72"
    same = "In May she sold 24. Total 48 + 24 = 72"
    other = "48 * 2 = 96, and 96 + 48 = 144"
    ja, ov, last, stated = number_features(a, same)
    assert ja > number_features(a, other)[0] and ov == 1.0 and last == 1.0 and stated == 0.0
    assert number_features("so \\boxed{72}", "thus \\boxed{72}")[3] == 1.0
    assert number_features("no digits", "none here") == [0.0, 0.0, 0.0, 0.0]


def test_a_head_saved_without_a_feature_set_loads_as_embedding_only(tmp_path):
    import torch

    from parareason.judge.trained import HeadConfig, PairHead, feature_dim

    dim = feature_dim(384, "embedding")
    head = PairHead(HeadConfig(input_dim=dim, hidden=8))
    torch.save({"format": "parareason-judge-head/1", "head_config": {"input_dim": dim, "hidden": 8, "dropout": 0.1},
                "state_dict": head.state_dict(), "threshold": 0.7}, str(tmp_path / "old.pt"))
    judge = TrainedJudge.load(tmp_path / "old.pt")
    assert judge.featurize.feature_set == "embedding"
    assert 0.0 <= judge.score("1 + 1 = 2", "2") <= 1.0


def test_validation_keeps_the_best_epoch_and_stops_early():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(256, 8)), (rng.random(256) < 0.5).astype(np.float32)  # pure noise: only memorisable
    xv, yv = rng.normal(size=(128, 8)), (rng.random(128) < 0.5).astype(np.float32)
    config = TrainConfig(epochs=200, batch_size=32, hidden=64, dropout=0.0, lr=3e-3, patience=3, seed=0)
    head, history = train_head(x, y, config, val=(xv, yv))
    assert len(history.val_loss) == len(history.epoch_loss) < 201  # stopped long before 200 epochs
    best = history.best_epoch
    assert history.val_loss[best] == min(history.val_loss)
    assert len(history.val_loss) - 1 - best == config.patience  # stopped `patience` epochs after the best
    with torch.no_grad():
        kept = float(focal_loss(head(torch.tensor(xv, dtype=torch.float32)), torch.tensor(yv), config.gamma, config.alpha))
    assert kept == pytest.approx(history.val_loss[best], rel=1e-5)  # the best weights are the ones returned
    _, plain = train_head(x, y, TrainConfig(epochs=4, hidden=16, seed=0))
    assert plain.best_epoch is None and plain.val_loss == [] and len(plain.epoch_loss) == 5

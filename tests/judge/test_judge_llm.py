"""LLM judge through the Backend interface, on a scripted test double.

`YesNoScriptedBackend` is a deterministic stand-in for a model: it answers the judge's
prompt with top logprobs that favour " yes" when the two solutions shown end with the
same "#### n" line. It checks the judge's plumbing (prompt -> backend -> logprobs ->
P(yes)), not a model's judgement.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from parareason.judge.llm import LLMJudge, LLMJudgeConfig
from parareason.backends.base import Backend, GenerationRequest, SeqUpdate


class WordTokenizer:
    """One id per distinct whitespace-separated piece (leading space kept)."""

    name = "word-scripted"
    eos_token_ids = frozenset({0})

    def __init__(self):
        self.vocab: dict[str, int] = {"<eos>": 0}

    def _id(self, piece: str) -> int:
        return self.vocab.setdefault(piece, len(self.vocab))

    def encode(self, text: str) -> list[int]:
        return [self._id(p) for p in re.findall(r"\s*\S+", text)]

    def decode(self, ids) -> str:
        inv = {v: k for k, v in self.vocab.items()}
        return "".join(inv[i] for i in ids if i != 0)

    def chat_ids(self, messages, add_generation_prompt=True) -> list[int]:
        text = "".join(f"<{m['role']}> {m['content']} " for m in messages)
        return self.encode(text + ("<assistant>" if add_generation_prompt else ""))


class YesNoScriptedBackend(Backend):
    name = "yes-no-scripted"

    def __init__(self, with_logprobs: bool = True):
        self.tokenizer = WordTokenizer()
        self.with_logprobs = with_logprobs
        self.queue: list[GenerationRequest] = []
        self.seen: list[GenerationRequest] = []

    def submit(self, req: GenerationRequest) -> None:
        self.queue.append(req)
        self.seen.append(req)

    def step(self, timeout_s: float = 0.05) -> list[SeqUpdate]:
        out = []
        tok = self.tokenizer
        for req in self.queue:
            text = tok.decode(req.input_ids)
            finals = re.findall(r"####\s*(\S+)", text)
            same = len(finals) == 2 and finals[0] == finals[1]
            yes, no = tok.encode(" yes")[0], tok.encode(" no")[0]
            p_yes = 0.8 if same else 0.1
            top = [(yes, math.log(p_yes)), (no, math.log(1 - p_yes))] if self.with_logprobs else None
            first = yes if same else no
            out.append(SeqUpdate(req.seq_id, [first], [0.0], [top] if top else None, finished=True,
                                 finish_reason="length", prompt_tokens=len(req.input_ids)))
        self.queue = []
        return out

    def abort(self, seq_id: str) -> None:
        self.queue = [r for r in self.queue if r.seq_id != seq_id]

    def has_work(self) -> bool:
        return bool(self.queue)


def test_p_yes_comes_from_top_logprobs_and_batches():
    backend = YesNoScriptedBackend()
    judge = LLMJudge(backend, LLMJudgeConfig(question="How many clips?"))
    scores = judge.score_many([("48 + 24 = 72 #### 72", "so 72 #### 72"), ("#### 72", "#### 70")])
    assert scores == pytest.approx([0.8, 0.1])
    assert len(backend.seen) == 2
    req = backend.seen[0]
    assert req.params.temperature == 0.0 and req.params.top_logprobs > 0
    prompt = backend.tokenizer.decode(req.input_ids)
    assert "How many clips?" in prompt and "so 72" in prompt and "yes or no" in prompt


def test_falls_back_to_generated_text_without_logprobs():
    judge = LLMJudge(YesNoScriptedBackend(with_logprobs=False))
    assert judge.score("#### 5", "#### 5") == 1.0
    assert judge.score("#### 5", "#### 6") == 0.0


def test_long_traces_are_cut_to_their_start_and_compared_as_equal_prefixes():
    backend = YesNoScriptedBackend()
    judge = LLMJudge(backend, LLMJudgeConfig(max_trace_chars=40))
    judge.score("start " * 100 + "#### 9", "#### 9")
    prompt = backend.tokenizer.decode(backend.seen[0].input_ids)
    assert prompt.count("start") == 6 and prompt.count("#### 9") == 1  # the first 40 characters of the long one
    # online (score_against) the longer trace is cut to the shorter one's length
    [p] = judge.score_against("#### 9 ok", ["#### 9 and then much more text"])
    prompt = backend.tokenizer.decode(backend.seen[1].input_ids)
    assert "much more" not in prompt and prompt.count("#### 9") == 2 and p == pytest.approx(0.8)


def test_real_small_model_gives_p_yes_from_logprobs(engine):
    """The shipped SmolLM2-135M (the session's shared embedded engine): the judge's prompt
    runs as a real sequence and P(yes) comes from the first token's top logprobs (a model's
    judgement, not checked for quality: 135M is far too weak for that)."""
    judge = LLMJudge(engine, LLMJudgeConfig(max_trace_chars=300, top_logprobs=20))
    assert judge._yes and judge._no and not judge._yes & judge._no
    scores = judge.score_many([("48 / 2 = 24, and 48 + 24 = 72. #### 72", "So she sold 72 clips. #### 72"),
                               ("The answer is 72.", "The answer is 5.")])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    assert not engine.has_work()  # every judge sequence finished and was collected


def test_evaluate_judge_shows_each_pair_its_own_question():
    """`judge eval` asks the LLM judge about each pair with that pair's problem in the prompt."""
    from parareason.judge.pairs import QuestionTraces, TraceText
    from parareason.judge.workflow import evaluate_judge

    backend = YesNoScriptedBackend()
    questions = [QuestionTraces(f"q{i}", f"Problem number {i}?", "7",
                                [TraceText("#### 7", "7"), TraceText("so #### 7", "7"), TraceText("#### 8", "8")])
                 for i in range(3)]
    report = evaluate_judge(LLMJudge(backend), questions, 0.5, prefix_chars=(0,))
    assert report.n_pairs == 9 and report.auroc == 1.0
    for req in backend.seen:
        prompt = backend.tokenizer.decode(req.input_ids)
        assert sum(f"Problem number {i}?" in prompt for i in range(3)) == 1
    lo, hi = report.auroc_ci
    assert lo == hi == 1.0  # every resample separates perfectly


def test_cli_judge_eval_with_the_llm_judge(tmp_path):
    """`parareason judge eval --judge llm` loads --model and scores pairs through it."""
    import json

    from click.testing import CliRunner

    from parareason.cli.main import main
    from tests.support.engine_util import TEST_MODEL

    fixture = Path(__file__).parents[1] / "fixtures" / "judge" / "gsm8k_smollm2_traces.jsonl"
    out = tmp_path / "llm.json"
    r = CliRunner().invoke(main, ["judge", "eval", str(fixture), "--judge", "llm", "--model", TEST_MODEL,
                                  "--dtype", "float32", "--all-questions", "--max-pairs-per-question", "2",
                                  "--prefix-chars", "200", "--json-out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["judge"] == "llm" and rep["model"] == TEST_MODEL and rep["n_pairs"] > 0
    assert "95% CI" in r.output and set(rep["by_prefix"]) == {"200"}

"""SCALE (Selective Resource Allocation; Xiao et al., AAAI 2026), the paper's pipeline as
XiaoYang66/DualThinking `inference/cot_dual_thinking.py` (`System3Base`) runs it:

1. outline (`thinking_outline_majority_voting`): `outline_versions` candidate
   decompositions into sub-problems are sampled in parallel (JSON {"step1": ...}), and
   one more sample chooses among them ("versionN", up to `select_retries` tries). The
   last step is replaced by the original question, as the reference does.
2. difficulty (`thinking_scores`): the model scores each step in [0, 1] given the problem
   and the earlier steps (all steps at once, in parallel: a score sees step texts only);
   the last step is scored 0.9, as the reference forces it.
3. solving (`thinking_details`), in order, each step's prompt carrying the earlier steps
   and their answers: difficulty <= `easy_threshold` -> System 1, one direct sample;
   above it -> System 2, a nested scope run by the `nested` parallel policy (default
   self-consistency with n samples) with its own budget. The request's answer is the
   last step's (the question's).

`difficulty="probe"` keeps parareason's earlier estimate instead of step 2: per step,
`probe_samples` short probes (`probe_tokens`) measure confidence and agreement
(scale_prompts.estimate_difficulty); an easy step takes the probes' answer (System 1).

Deviations, each for a reason:
* System 2 is a nested parallel policy, not the reference's "thinking mode" of a hybrid
  model (the shipped models have none); the nested policy's extra samples are the extra
  budget;
* an outline that does not parse is dropped (the reference retries it until it does);
  with one valid candidate there is no selection call; when no choice parses after
  `select_retries` tries the first valid candidate is used (the reference gives up on the
  question); with no valid candidate the question is the only step;
* a score that never parses after `score_retries` tries counts as hard (1.0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parareason.policies.common import launch_many, mean_logprob, overrides
from parareason.policies.scale_prompts import (DETAIL_PROMPT, FINAL_STEP_SCORE, OUTLINE_PROMPT, SCORE_PROMPT,
                                               SELECT_PROMPT, estimate_difficulty, parse_outline, parse_score,
                                               parse_version, process_text, versions_block)
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView

DIFFICULTY = ("llm", "probe")


@dataclass
class ScaleParams:
    n: int = 4  # parallel samples of a hard sub-problem's nested policy
    nested: str = "self_consistency"
    nested_params: dict[str, Any] = field(default_factory=dict)
    difficulty: str = "llm"  # llm (the paper's score) | probe (parareason's earlier estimate)
    outline_versions: int = 8  # candidate decompositions (the reference's step_outline_versions)
    select_retries: int = 3  # the reference's MAX_RETRY_ATTEMPTS
    score_retries: int = 3
    max_subproblems: int = 6
    decompose_tokens: int = 256  # per candidate outline
    select_tokens: int = 16
    score_tokens: int = 64  # the reference's SCORE_MAX_TOKENS
    easy_threshold: float = 0.5  # System 2 above this difficulty (the reference's --difficulty 0.5)
    probe_samples: int = 1  # difficulty="probe"
    probe_tokens: int = 128  # difficulty="probe"
    easy_max_new_tokens: int | None = None  # System 1 sample (None: request default)
    hard_max_new_tokens: int | None = None  # per sample in System 2 (None: request default)
    hard_budget: int | None = None  # nested scope's token budget (None: n * hard_max_new_tokens)
    temperature: float | None = None


@dataclass
class SubProblem:
    index: int
    text: str
    difficulty: float | None = None
    mode: str = "pending"  # system1 | system2 | skipped
    budget: int | None = None
    tokens: int = 0
    answer: str | None = None
    score_tries: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text,
                "difficulty": None if self.difficulty is None else round(self.difficulty, 4),
                "mode": self.mode, "budget": self.budget, "tokens": self.tokens, "answer": self.answer,
                "score_tries": self.score_tries}


class Scale(Policy):
    name = "scale"

    def __init__(self, params: ScaleParams | None = None) -> None:
        self.params = params or ScaleParams()
        if self.params.difficulty not in DIFFICULTY:
            raise ValueError(f"scale difficulty must be one of {', '.join(DIFFICULTY)}, "
                             f"not {self.params.difficulty!r}")
        self._reset()

    def _reset(self) -> None:
        self._phase = "outline"  # outline | select | score | solve | done
        self._outlines: list[list[str]] = []
        self._selected: int | None = None
        self._selection = "none"
        self._select_tries = 0
        self._subs: list[SubProblem] = []
        self._current = -1
        self._probes: list[SampleView] = []
        self._scope: PolicyContext | None = None
        self._fallback = False

    # -- helpers -------------------------------------------------------------------
    def _launch(self, ctx: PolicyContext, prompt: str, max_new_tokens: int | None, tag: str) -> SampleView | None:
        s = ctx.launch(prompt=prompt, tag=tag, overrides=overrides(
            temperature=self.params.temperature, max_new_tokens=max_new_tokens))
        if s is None:  # a limit refused: finish with what we have
            ctx.record("scale_launch_refused", tag=tag)
            self._phase = "done"
        return s

    def _detail_prompt(self, ctx: PolicyContext, sub: SubProblem) -> str:
        done = self._subs[:sub.index]
        return DETAIL_PROMPT.format(question=ctx.prompt, step=sub.text,
                                    process=process_text([s.text for s in done], [s.answer for s in done]))

    # -- 1. outline and choice -----------------------------------------------------------
    def start(self, ctx: PolicyContext) -> None:
        self._reset()
        p = self.params
        launch_many(ctx, max(1, p.outline_versions), tag="outline",
                    prompt=OUTLINE_PROMPT.format(max_sub=p.max_subproblems, question=ctx.prompt),
                    ov=overrides(temperature=p.temperature, max_new_tokens=p.decompose_tokens))
        if not ctx.samples:
            self._phase = "done"

    def on_sample_end(self, ctx: PolicyContext, sample: SampleView) -> None:
        if self._phase == "outline" and sample.tag == "outline":
            if not any(s.live for s in ctx.samples if s.tag == "outline"):
                self._outlines = [o for o in (parse_outline(s.text, self.params.max_subproblems)
                                              for s in ctx.samples if s.tag == "outline") if o]
                self._choose(ctx, None)
        elif self._phase == "select" and sample.tag == "select":
            self._choose(ctx, parse_version(sample.text, len(self._outlines)))
        elif self._phase == "score" and sample.tag.startswith("score-"):
            self._scored(ctx, sample)
        elif self._phase == "solve" and sample.tag == f"s1-{self._current}":
            sub = self._subs[self._current]
            sub.answer, sub.tokens = sample.answer, sub.tokens + sample.generated_tokens
            ctx.record("scale_system1", sub=sub.index, difficulty=sub.difficulty, answer=sub.answer)
            self._next_step(ctx)
        elif self._phase == "solve" and sample.tag == f"probe-{self._current}":
            if not any(s.live for s in self._probes):
                self._assess_probes(ctx)

    def _choose(self, ctx: PolicyContext, choice: int | None) -> None:
        p = self.params
        if choice is None and len(self._outlines) > 1 and self._select_tries < max(1, p.select_retries):
            self._phase = "select"
            self._select_tries += 1
            prompt = SELECT_PROMPT.format(question=ctx.prompt, versions=versions_block(self._outlines))
            self._launch(ctx, prompt, p.select_tokens, "select")
            return
        if choice is not None:
            self._selected, self._selection = choice, "llm"
        elif self._outlines:
            self._selected = 0
            self._selection = "only candidate" if len(self._outlines) == 1 else "fallback: no valid choice"
        steps = list(self._outlines[self._selected]) if self._selected is not None else [ctx.prompt]
        self._fallback = self._selected is None
        steps[-1] = ctx.prompt  # the reference's last step is the question itself
        self._subs = [SubProblem(i, t) for i, t in enumerate(steps)]
        self._subs[-1].difficulty = FINAL_STEP_SCORE
        ctx.record("scale_outline", candidates=len(self._outlines), selected=self._selected,
                   selection=self._selection, subproblems=steps)
        if p.difficulty == "llm" and len(self._subs) > 1:
            self._phase = "score"
            for sub in self._subs[:-1]:
                self._score(ctx, sub)
        else:
            self._phase = "solve"
            self._next_step(ctx)

    # -- 2. difficulty -------------------------------------------------------------------
    def _score(self, ctx: PolicyContext, sub: SubProblem) -> None:
        sub.score_tries += 1
        prompt = SCORE_PROMPT.format(question=ctx.prompt, step=sub.text,
                                     process=process_text([s.text for s in self._subs[:sub.index]]))
        self._launch(ctx, prompt, self.params.score_tokens, f"score-{sub.index}")

    def _scored(self, ctx: PolicyContext, sample: SampleView) -> None:
        sub = self._subs[int(sample.tag.split("-")[1])]
        sub.tokens += sample.generated_tokens
        score = parse_score(sample.text)
        if score is None and sub.score_tries < max(1, self.params.score_retries):
            self._score(ctx, sub)
            return
        sub.difficulty = 1.0 if score is None else score
        if all(s.difficulty is not None for s in self._subs) and not any(s.live for s in ctx.samples):
            ctx.record("scale_scores", scores=[s.difficulty for s in self._subs])
            self._phase = "solve"
            self._next_step(ctx)

    # -- 3. solving ----------------------------------------------------------------------
    def _next_step(self, ctx: PolicyContext) -> None:
        if self._phase == "done":
            return
        self._current += 1
        if self._current >= len(self._subs):
            self._phase = "done"
            return
        p = self.params
        sub = self._subs[self._current]
        if sub.difficulty is None:  # difficulty="probe": measure it now
            self._probes = launch_many(ctx, max(1, p.probe_samples), prompt=self._detail_prompt(ctx, sub),
                                       tag=f"probe-{sub.index}",
                                       ov=overrides(temperature=p.temperature, max_new_tokens=p.probe_tokens))
            if not self._probes:
                sub.mode, self._phase = "skipped", "done"
            return
        if sub.difficulty <= p.easy_threshold:
            sub.mode, sub.budget = "system1", p.easy_max_new_tokens
            self._launch(ctx, self._detail_prompt(ctx, sub), p.easy_max_new_tokens, f"s1-{sub.index}")
        else:
            self._open_system2(ctx, sub)

    def _assess_probes(self, ctx: PolicyContext) -> None:
        sub = self._subs[self._current]
        answers = [s.answer for s in self._probes]
        best, agree = None, 0
        for a in answers:  # plurality answer among the probes
            c = sum(1 for b in answers if ctx.same_answer(a, b))
            if a is not None and c > agree:
                best, agree = a, c
        sub.difficulty = estimate_difficulty(answers, [mean_logprob(s) for s in self._probes], agree)
        sub.tokens = sum(s.generated_tokens for s in self._probes)
        if sub.difficulty <= self.params.easy_threshold:
            sub.mode, sub.answer, sub.budget = "system1", best, self.params.probe_tokens * len(self._probes)
            ctx.record("scale_system1", sub=sub.index, difficulty=sub.difficulty, answer=best)
            self._next_step(ctx)
        else:
            self._open_system2(ctx, sub)

    def _open_system2(self, ctx: PolicyContext, sub: SubProblem) -> None:
        from parareason.policies.build import make_policy  # lazy: build.py imports this module

        p = self.params
        budget = p.hard_budget
        if budget is None and p.hard_max_new_tokens is not None:
            budget = p.n * p.hard_max_new_tokens
        left = ctx.budget_left()
        if left is not None:
            budget = left if budget is None else min(budget, left)
        sub.mode, sub.budget = "system2", budget
        nested_params = {"n": p.n, **p.nested_params}
        if p.hard_max_new_tokens is not None:
            nested_params.setdefault("max_new_tokens", p.hard_max_new_tokens)
        nested = make_policy(p.nested, **nested_params)
        self._scope = ctx.scope(policy=nested, prompt=self._detail_prompt(ctx, sub), budget=budget,
                                tag=f"sub-{sub.index}")
        ctx.record("scale_system2", sub=sub.index, difficulty=sub.difficulty, budget=budget, nested=p.nested)
        nested.start(self._scope)

    def on_scope_done(self, ctx: PolicyContext, scope: PolicyContext, decision: Decision) -> None:
        if self._phase != "solve" or scope is not self._scope:
            return
        sub = self._subs[self._current]
        sub.answer = decision.answer
        sub.tokens += scope.tokens_used()
        ctx.record("scale_sub_done", sub=sub.index, answer=decision.answer, tokens=scope.tokens_used())
        self._scope = None
        self._next_step(ctx)

    def is_done(self, ctx: PolicyContext) -> bool:
        if self._phase == "done":
            return True
        # A stage waits on a live sample or an open scope; with neither, nothing can move
        # it on any more (e.g. the scheduler ended samples without telling us).
        return super().is_done(ctx)

    def finalize(self, ctx: PolicyContext) -> Decision:
        last = self._subs[-1] if self._subs else None
        answer = last.answer if last is not None else None
        source = "last_step" if answer is not None else "none"
        ctx.record("scale_final", answer=answer, source=source)
        return Decision(answer, {"subproblems": [s.to_dict() for s in self._subs],
                                 "outlines": self._outlines, "selected": self._selected,
                                 "selection": self._selection, "difficulty_source": self.params.difficulty,
                                 "decomposition_fallback": self._fallback, "answer_source": source})

"""SCALE (selective resource allocation): decompose, then spend compute where it is
needed.

1. One sample writes a numbered decomposition into sub-problems (fallback: the whole
   question is the single sub-problem).
2. Sub-problems are solved in order; each prompt carries the earlier results.
   A quick short probe (`probe_samples` samples of `probe_tokens`) estimates the
   step's difficulty from its confidence (and agreement, with 2+ probes).
   - easy (difficulty <= easy_threshold): System 1, the probe's answer is the result;
   - hard: System 2, a nested scope with its own token budget run by a nested policy
     (self-consistency by default; "ffs", "deepconf", ... via `nested`).
3. One more sample synthesises the final answer from the sub-results.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parareason.policies.common import launch_many, mean_logprob, overrides
from parareason.policies.scale_prompts import (DECOMPOSE_PROMPT, SUBPROBLEM_PROMPT, SYNTHESIS_PROMPT,
                                               estimate_difficulty, parse_subproblems, solved_block)
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleView


@dataclass
class ScaleParams:
    n: int = 4  # parallel samples of a hard sub-problem's nested policy
    nested: str = "self_consistency"
    nested_params: dict[str, Any] = field(default_factory=dict)
    max_subproblems: int = 4
    decompose_tokens: int = 128
    probe_samples: int = 1
    probe_tokens: int = 128
    easy_threshold: float = 0.3
    hard_max_new_tokens: int | None = None  # per sample in System 2 (None: request default)
    hard_budget: int | None = None  # nested scope's token budget (None: n * hard_max_new_tokens)
    synth_tokens: int | None = None
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

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text,
                "difficulty": None if self.difficulty is None else round(self.difficulty, 4),
                "mode": self.mode, "budget": self.budget, "tokens": self.tokens, "answer": self.answer}


class Scale(Policy):
    name = "scale"

    def __init__(self, params: ScaleParams | None = None) -> None:
        self.params = params or ScaleParams()
        self._reset()

    def _reset(self) -> None:
        self._phase = "decompose"  # decompose | probe | system2 | synthesize | done
        self._subs: list[SubProblem] = []
        self._current = -1
        self._probes: list[SampleView] = []
        self._scope: PolicyContext | None = None
        self._synthesis: SampleView | None = None
        self._fallback = False

    # -- prompts -------------------------------------------------------------------
    def _solved(self) -> str:
        done = self._subs[:self._current]
        return solved_block([s.text for s in done], [s.answer for s in done])

    def _sub_prompt(self, ctx: PolicyContext, sub: SubProblem) -> str:
        return SUBPROBLEM_PROMPT.format(question=ctx.prompt, solved=self._solved(), step=sub.text)

    def _launch(self, ctx: PolicyContext, prompt: str, max_new_tokens: int | None, tag: str) -> SampleView | None:
        s = ctx.launch(prompt=prompt, tag=tag, overrides=overrides(
            temperature=self.params.temperature, max_new_tokens=max_new_tokens))
        if s is None:  # a limit refused: finish with what we have
            ctx.record("scale_launch_refused", tag=tag)
            self._phase = "done"
        return s

    # -- flow ----------------------------------------------------------------------
    def start(self, ctx: PolicyContext) -> None:
        self._reset()
        p = self.params
        prompt = DECOMPOSE_PROMPT.format(max_sub=p.max_subproblems, question=ctx.prompt)
        self._launch(ctx, prompt, p.decompose_tokens, "decompose")

    def on_sample_end(self, ctx: PolicyContext, sample: SampleView) -> None:
        if self._phase == "decompose" and sample.tag == "decompose":
            steps = parse_subproblems(sample.text, self.params.max_subproblems)
            self._fallback = not steps
            steps = steps or [ctx.prompt]
            self._subs = [SubProblem(i, t) for i, t in enumerate(steps)]
            ctx.record("scale_decomposed", subproblems=steps, fallback=self._fallback)
            self._next_subproblem(ctx)
        elif self._phase == "probe" and sample.tag == f"probe-{self._current}":
            if not any(s.live for s in self._probes):
                self._assess(ctx)
        elif self._phase == "synthesize" and sample is self._synthesis:
            self._phase = "done"

    def _next_subproblem(self, ctx: PolicyContext) -> None:
        self._current += 1
        if self._current >= len(self._subs):
            self._synthesize(ctx)
            return
        sub = self._subs[self._current]
        self._phase = "probe"
        self._probes = launch_many(ctx, max(1, self.params.probe_samples),
                                   prompt=self._sub_prompt(ctx, sub), tag=f"probe-{sub.index}",
                                   ov=overrides(temperature=self.params.temperature,
                                                max_new_tokens=self.params.probe_tokens))
        if not self._probes:
            sub.mode = "skipped"
            self._phase = "done"

    def _assess(self, ctx: PolicyContext) -> None:
        p = self.params
        sub = self._subs[self._current]
        answers = [s.answer for s in self._probes]
        best, agree = None, 0
        for a in answers:  # plurality answer among the probes
            c = sum(1 for b in answers if ctx.same_answer(a, b))
            if a is not None and c > agree:
                best, agree = a, c
        sub.difficulty = estimate_difficulty(answers, [mean_logprob(s) for s in self._probes], agree)
        sub.tokens = sum(s.generated_tokens for s in self._probes)
        if sub.difficulty <= p.easy_threshold:
            sub.mode, sub.answer, sub.budget = "system1", best, p.probe_tokens * len(self._probes)
            ctx.record("scale_system1", sub=sub.index, difficulty=sub.difficulty, answer=best)
            self._next_subproblem(ctx)
            return
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
        self._phase = "system2"
        nested = make_policy(p.nested, **nested_params)
        self._scope = ctx.scope(policy=nested, prompt=self._sub_prompt(ctx, sub), budget=budget,
                                tag=f"sub-{sub.index}")
        ctx.record("scale_system2", sub=sub.index, difficulty=sub.difficulty, budget=budget,
                   nested=p.nested)
        nested.start(self._scope)

    def on_scope_done(self, ctx: PolicyContext, scope: PolicyContext, decision: Decision) -> None:
        if self._phase != "system2" or scope is not self._scope:
            return
        sub = self._subs[self._current]
        sub.answer = decision.answer
        sub.tokens += scope.tokens_used()
        ctx.record("scale_sub_done", sub=sub.index, answer=decision.answer, tokens=scope.tokens_used())
        self._scope = None
        self._next_subproblem(ctx)

    def _synthesize(self, ctx: PolicyContext) -> None:
        self._phase = "synthesize"
        prompt = SYNTHESIS_PROMPT.format(question=ctx.prompt, solved=self._solved())
        self._synthesis = self._launch(ctx, prompt, self.params.synth_tokens, "synthesize")

    def is_done(self, ctx: PolicyContext) -> bool:
        if self._phase == "done":
            return True
        # A stage waits on a live sample or an open scope; with neither, nothing can move
        # it on any more (e.g. the scheduler ended samples without telling us).
        return super().is_done(ctx)

    def finalize(self, ctx: PolicyContext) -> Decision:
        answer = self._synthesis.answer if self._synthesis is not None else None
        source = "synthesis"
        if answer is None:  # no synthesis answer: fall back to the last solved step
            solved = [s.answer for s in self._subs if s.answer is not None]
            answer, source = (solved[-1], "last_subproblem") if solved else (None, "none")
        ctx.record("scale_final", answer=answer, source=source)
        return Decision(answer, {"subproblems": [s.to_dict() for s in self._subs],
                                 "decomposition_fallback": self._fallback, "answer_source": source,
                                 "synthesis_tokens": self._synthesis.generated_tokens if self._synthesis else 0})

"""DeepPrune (Tu et al. 2025, "DeepPrune: Parallel Scaling without Inter-trace
Redundancy"): online greedy clustering of parallel traces by a judge that predicts
whether two *partial* traces reach the same answer, with the duplicates pruned.

As in the paper: launch `width` samples. When a sample reaches its first checkpoint
(`check_every` generated tokens) the judge compares it with the representatives of the
existing clusters (`clusters.OnlineClusters`), each pair as prefixes of equal length
(`Judge.score_against`, the paper's truncation). Above `threshold` it joins the
best-scoring cluster and is pruned unless that cluster still needs representatives;
otherwise it founds a new cluster. Greedy and online: nobody waits for all samples to
reach a checkpoint. The answer is a vote over clusters: each cluster's weight (its size:
the paper's majority vote, a pruned trace counting for the cluster it was placed in;
`weighting="size_confidence"` also multiplies by the representatives' confidence, an
extension) is shared by its *finished* representatives, whose answers are the only ones
that count.

Extensions (options, off by default unless noted):
* `recheck_founders`: a sample already placed (a founder or a kept representative) is
  judged again at its next checkpoints, up to `max_checks` judgements, since later text
  says more about the answer; when it then matches another cluster, its cluster merges
  into that one. The paper judges each trace once.
* `replace_lost_reps` (on): when a cluster's last representative fails while it covers
  pruned samples, a replacement is launched so their vote is not lost.
Every placement (sample, action, cluster, judge score) is recorded in the trace with
`ctx.record("deepprune", ...)`.

Nesting: the policy only uses its `PolicyContext`, so a parent policy can run it in a
nested scope (e.g. SCALE's hard sub-problems): `child.start(ctx.scope(policy=child, ...))`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from parareason.grading import majority_vote
from parareason.judge.base import Judge
from parareason.pruning.clusters import OnlineClusters, Placement
from parareason.runtime.policy import Decision, Policy, PolicyContext, SampleOverrides, SampleView, Status

LOST_STATUSES = (Status.FAILED, Status.LIMIT)  # a representative that ends like this delivers no answer


@dataclass
class DeepPruneParams:
    width: int = 8  # samples launched (never more live at once)
    check_every: int = 128  # generated tokens between judge checkpoints
    recheck_founders: bool = False  # extension: judge placed samples again at later checkpoints
    max_checks: int = 3  # with recheck_founders: judgements per sample, the first included
    threshold: float | None = None  # join a cluster above this judge score (None: the judge's own, else 0.5)
    reps_per_cluster: int = 1  # members of a cluster kept running to completion
    weighting: str = "size"  # "size" or "size_confidence"
    # auto: the head shipped for the request's model (judge/heads/), else embedding;
    # embedding | trained (with head) | answer. Used when no Judge is passed in.
    judge: str = "auto"
    head: str | None = None  # trained judge head file
    calibration: str | None = None  # embedding judge calibration JSON
    replace_lost_reps: bool = True  # relaunch when a cluster's last rep fails while it covers pruned ones
    temperature: float | None = None  # sampling override (None = request's)


def sample_confidence(s: SampleView) -> float:
    """exp(mean token logprob) of the sample's main thread, in (0, 1]."""
    lps = list(s.logprobs)
    return math.exp(sum(lps) / len(lps)) if lps else 1.0


class DeepPrunePolicy(Policy):
    name: ClassVar[str] = "deepprune"

    def __init__(self, params: DeepPruneParams | None = None, judge: Judge | None = None):
        self.params = params or DeepPruneParams()
        if self.params.weighting not in ("size", "size_confidence"):
            raise ValueError(f"unknown weighting {self.params.weighting!r}")
        self._judge = judge
        self._reset()

    def __deepcopy__(self, memo: dict) -> "DeepPrunePolicy":
        """Per-request copies (the API copies a policy instance for every request) share
        the judge: it holds a model and no per-request state."""
        import copy

        return DeepPrunePolicy(copy.deepcopy(self.params, memo), judge=self._judge)

    @property
    def width(self) -> int:
        return self.params.width  # samples launched; DeepPrune has no `n`

    @property
    def threshold(self) -> float:
        if self.params.threshold is not None:
            return self.params.threshold
        return float(getattr(self.judge, "threshold", 0.5))  # a trained head carries its own

    def _reset(self) -> None:
        """Per-request state; `start` calls it so one instance can serve many requests
        (the judge, costly to build, is kept)."""
        # Threshold resolved lazily (in start): the judge may not be built yet.
        self.clusters = OnlineClusters(0.5 if self.params.threshold is None else self.params.threshold,
                                       self.params.reps_per_cluster)
        self._checkpoint: dict[str, int] = {}  # last checkpoint index judged per sample
        self._checks: dict[str, int] = {}  # judge checks per sample
        self._pruned_by_us: set[str] = set()
        self.judge_calls = 0
        self.replacements = 0

    @property
    def judge(self) -> Judge:
        if self._judge is None:  # built on first use: policies are constructed before any request
            self._judge = self._build_judge(None)
        return self._judge

    def _build_judge(self, model: str | None) -> Judge:
        from parareason.judge.factory import shared_judge
        from parareason.judge.heads import resolve_auto

        kind, head = resolve_auto(self.params.judge, self.params.head, model)
        return shared_judge(kind, head, self.params.calibration)

    # -- hooks -----------------------------------------------------------------------
    def start(self, ctx: PolicyContext) -> None:
        if self._judge is None:  # the request's model picks the shipped head
            self._judge = self._build_judge(ctx.model)
        self._reset()
        self.clusters.threshold = self.threshold
        for _ in range(self.params.width):
            if self._launch(ctx, tag="deepprune") is None:
                break

    def on_tokens(self, ctx: PolicyContext, sample: SampleView, new_tokens: int) -> None:
        if not sample.live:
            return
        cp = sample.generated_tokens // max(1, self.params.check_every)
        if cp < 1 or cp <= self._checkpoint.get(sample.id, 0):
            return
        self._checkpoint[sample.id] = cp
        if sample.id in self.clusters.cluster_of and (
                not self.params.recheck_founders or self._checks.get(sample.id, 0) >= self.params.max_checks):
            return  # placed (the paper judges a trace once) or settled: runs to completion
        self._checks[sample.id] = self._checks.get(sample.id, 0) + 1
        self._place(ctx, sample, can_prune=True)

    def on_sample_end(self, ctx: PolicyContext, sample: SampleView) -> None:
        if sample.id in self._pruned_by_us:
            return
        if sample.status == Status.FINISHED and sample.id not in self.clusters.cluster_of:
            self._place(ctx, sample, can_prune=False)  # ended before its first checkpoint
        elif sample.status in LOST_STATUSES and self.params.replace_lost_reps:
            self._replace_if_uncovered(ctx, sample)

    def finalize(self, ctx: PolicyContext) -> Decision:
        views = {s.id: s for s in ctx.samples}
        answers, weights, confidence, per_cluster = [], [], [], []
        for c in self.clusters.clusters.values():
            done = [r for r in c.reps if views[r].status == Status.FINISHED and views[r].answer is not None]
            per_cluster.append({"cluster": c.id, "size": c.size, "reps": list(c.reps), "pruned": list(c.pruned),
                                "answers": [views[r].answer for r in done]})
            for r in done:
                conf = sample_confidence(views[r])
                w = c.size / len(done) * (conf if self.params.weighting == "size_confidence" else 1.0)
                answers.append(views[r].answer)
                weights.append(w)
                confidence.append(conf)
        answer, groups = majority_vote(answers, weights, same=ctx.same_answer, tie_break=confidence)
        details: dict[str, Any] = {
            "clusters": per_cluster,
            "votes": [{"answer": g.answer, "weight": g.weight} for g in groups],
            "pruned": len(self._pruned_by_us),
            "tokens_saved_est": self._tokens_saved_estimate(views),
            "judge": getattr(self.judge, "name", type(self.judge).__name__),
            "judge_calls": self.judge_calls,
            "replacements": self.replacements,
            "threshold": self.clusters.threshold,
            "params": asdict(self.params),
        }
        return Decision(answer=answer, details=details)

    # -- internals -------------------------------------------------------------------
    def _launch(self, ctx: PolicyContext, tag: str) -> SampleView | None:
        ov = SampleOverrides(temperature=self.params.temperature) if self.params.temperature is not None else None
        return ctx.launch(overrides=ov, tag=tag)

    def _place(self, ctx: PolicyContext, sample: SampleView, can_prune: bool) -> Placement:
        views = {s.id: s for s in ctx.samples}

        def active(sid: str) -> bool:
            v = views.get(sid)
            return v is not None and (v.live or v.status == Status.FINISHED)

        reps = self.clusters.comparable_reps(active, exclude=sample.id)
        scores: dict[int, float] = {}
        if reps:
            raw = self.judge.score_against(sample.text, [views[r].text for _, r in reps])
            self.judge_calls += len(reps)
            for (cid, _), s in zip(reps, raw):
                scores[cid] = max(scores.get(cid, 0.0), float(s))
        placement = self.clusters.place(sample.id, scores, active, can_prune=can_prune)
        ctx.record("deepprune", sample=sample.id, action=placement.action, cluster=placement.cluster,
                   score=placement.score, merged_from=placement.merged_from,
                   tokens=sample.generated_tokens, scores={str(k): round(v, 4) for k, v in scores.items()})
        if placement.action == "prune":
            self._pruned_by_us.add(sample.id)
            ctx.abort(sample, status=Status.PRUNED,
                      reason=f"deepprune: same answer as cluster {placement.cluster} (judge {placement.score:.3f})")
        return placement

    def _replace_if_uncovered(self, ctx: PolicyContext, sample: SampleView) -> None:
        cid = self.clusters.cluster_of.get(sample.id)
        if cid is None or cid not in self.clusters.clusters:
            return
        views = {s.id: s for s in ctx.samples}
        active = lambda sid: views[sid].live or views[sid].status == Status.FINISHED  # noqa: E731
        c = self.clusters.clusters[cid]
        if c.pruned and not any(active(r) for r in c.reps) and self.replacements < self.params.width:
            new = self._launch(ctx, tag="deepprune-replacement")
            if new is not None:
                self.replacements += 1
                ctx.record("deepprune", sample=new.id, action="replace", cluster=cid, lost=sample.id)

    def _tokens_saved_estimate(self, views: dict[str, SampleView]) -> int:
        """Per pruned sample: its cluster's finished reps' mean length minus what it had
        generated when pruned (an estimate: the pruned sample's own length is unknown)."""
        saved = 0
        for c in self.clusters.clusters.values():
            lengths = [views[r].generated_tokens for r in c.reps if views[r].status == Status.FINISHED]
            if not lengths:
                continue
            mean = sum(lengths) / len(lengths)
            saved += sum(max(0, round(mean - views[p].generated_tokens)) for p in c.pruned)
        return saved

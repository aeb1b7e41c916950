"""Online greedy clustering of samples by predicted final answer (pure logic).

A cluster is a set of samples a judge believes end with the same answer (score strictly
above the threshold, so an "unknown" 0.5 never joins at the default 0.5). Its
*representatives* keep running to completion; its other members were pruned because
a representative already covers them. The judge's scores come in from outside
(`place(sample, scores)`), so this module knows nothing of models or policies.

Invariant: a sample is pruned only into a cluster that keeps at least
`reps_per_cluster` other representatives that are live or finished, so every pruned
sample is covered by a representative that can still deliver its answer. Merging a
cluster into another moves its pruned members along, never away from live coverage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

Action = Literal["new", "rep", "prune", "stay"]


@dataclass
class Cluster:
    id: int
    reps: list[str] = field(default_factory=list)  # kept running to completion
    pruned: list[str] = field(default_factory=list)  # covered by the reps

    @property
    def members(self) -> list[str]:
        return self.reps + self.pruned

    @property
    def size(self) -> int:
        return len(self.reps) + len(self.pruned)


@dataclass
class Placement:
    sample_id: str
    action: Action
    cluster: int
    score: float | None = None  # judge score against the chosen cluster
    merged_from: int | None = None  # the sample's old cluster, merged into `cluster`


class OnlineClusters:
    def __init__(self, threshold: float, reps_per_cluster: int = 1):
        if reps_per_cluster < 1:
            raise ValueError("reps_per_cluster must be at least 1")
        self.threshold = threshold
        self.reps_per_cluster = reps_per_cluster
        self.clusters: dict[int, Cluster] = {}
        self.cluster_of: dict[str, int] = {}
        self._next_id = 0

    def comparable_reps(self, usable: Callable[[str], bool], exclude: str | None = None) -> list[tuple[int, str]]:
        """(cluster id, representative) pairs a new or re-checked sample is compared with."""
        skip = self.cluster_of.get(exclude) if exclude is not None else None
        return [(c.id, r) for c in self.clusters.values() if c.id != skip for r in c.reps if usable(r)]

    def covering_reps(self, cluster_id: int, active: Callable[[str], bool], besides: str | None = None) -> int:
        return sum(1 for r in self.clusters[cluster_id].reps if r != besides and active(r))

    def place(self, sample_id: str, scores: dict[int, float], active: Callable[[str], bool],
              can_prune: bool = True) -> Placement:
        """Decide for `sample_id` given its best judge score per cluster.

        `active(sample_id)`: live or finished (can still deliver an answer).
        `can_prune`: False for a sample that already ended (it can only join as a rep).
        """
        current = self.cluster_of.get(sample_id)
        matches = {c: s for c, s in scores.items() if c != current and c in self.clusters and s > self.threshold}
        if not matches:
            if current is not None:
                return Placement(sample_id, "stay", current, max(scores.values(), default=None))
            cid = self._new_cluster()
            self._add_rep(cid, sample_id)
            return Placement(sample_id, "new", cid, max(scores.values(), default=None))
        target = max(matches, key=lambda c: (matches[c], -c))  # best score, older cluster on ties
        merged_from = None
        if current is not None:
            self._merge(current, target)
            merged_from = current
        else:
            self._add_rep(target, sample_id)
        covered = self.covering_reps(target, active, besides=sample_id) >= self.reps_per_cluster
        if can_prune and covered:
            c = self.clusters[target]
            c.reps.remove(sample_id)
            c.pruned.append(sample_id)
            return Placement(sample_id, "prune", target, matches[target], merged_from)
        return Placement(sample_id, "rep", target, matches[target], merged_from)

    def _new_cluster(self) -> int:
        cid = self._next_id
        self._next_id += 1
        self.clusters[cid] = Cluster(cid)
        return cid

    def _add_rep(self, cid: int, sample_id: str) -> None:
        self.clusters[cid].reps.append(sample_id)
        self.cluster_of[sample_id] = cid

    def _merge(self, src: int, dst: int) -> None:
        s, d = self.clusters.pop(src), self.clusters[dst]
        d.reps.extend(s.reps)
        d.pruned.extend(s.pruned)
        for m in s.members:
            self.cluster_of[m] = dst

"""Multi-temperature voting: spread the n samples round-robin over a temperature
schedule (low temperatures are precise, high ones explore) and vote across all of
them; details report each temperature's own tally and winner."""
from __future__ import annotations

from dataclasses import dataclass

from parareason.policies.common import answered, overrides, vote, vote_table
from parareason.runtime.policy import Decision, Policy, PolicyContext


@dataclass
class MultiTempParams:
    n: int = 8
    temperatures: tuple[float, ...] = (0.3, 0.7, 1.0)
    max_new_tokens: int | None = None


def temperature_schedule(n: int, temperatures: tuple[float, ...]) -> list[float]:
    """Round-robin so every temperature gets floor(n/T) or ceil(n/T) samples."""
    if not temperatures:
        raise ValueError("multi_temp needs at least one temperature")
    return [temperatures[i % len(temperatures)] for i in range(n)]


class MultiTemperature(Policy):
    name = "multi_temp"

    def __init__(self, params: MultiTempParams | None = None) -> None:
        self.params = params or MultiTempParams()
        self.params.temperatures = tuple(float(t) for t in self.params.temperatures)

    def start(self, ctx: PolicyContext) -> None:
        p = self.params
        launched = 0
        for t in temperature_schedule(p.n, p.temperatures):
            if ctx.launch(overrides=overrides(temperature=t, max_new_tokens=p.max_new_tokens),
                          tag=f"t={t:g}") is None:
                break
            launched += 1
        ctx.record("multi_temp_launch", n=launched, temperatures=list(p.temperatures))

    def finalize(self, ctx: PolicyContext) -> Decision:
        done = answered(ctx.samples)
        answer, groups = vote(ctx, done)
        per_temp = {}
        for t in self.params.temperatures:
            tag = f"t={t:g}"
            mine = [s for s in done if s.tag == tag]
            t_answer, t_groups = vote(ctx, mine)
            per_temp[tag] = {"launched": sum(1 for s in ctx.samples if s.tag == tag),
                             "answered": len(mine), "winner": t_answer,
                             "votes": [(g.answer, g.count) for g in t_groups]}
        ctx.record("multi_temp_vote", answer=answer)
        return Decision(answer, {"votes": vote_table(done, groups), "per_temperature": per_temp})

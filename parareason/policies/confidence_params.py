"""DeepConf's parameters: the paper's defaults, a CPU preset, DeepConf-low / -high.

Defaults follow the paper and facebookresearch/deepconf `deepconf/wrapper.py`
(`deepthink`: `window_size=2048`, `warmup_traces=16`, `confidence_percentile=90`,
`logprobs=20`) and the paper's consensus tau = 0.95. `in_flight=0` launches every
remaining trace at once after the warm-up, as `_deepthink_online` does.

`preset="cpu"` is the setting the CPU benchmarks used (window 64, warm-up 4, in_flight 2,
top-5 alternatives: the embedded engine returns top-5 cheaply, top-20 costs more).
`variant="low"` keeps the top 10% (DeepConf-low), `variant="high"` the top 90%
(DeepConf-high, the reference's default). Every field left at None takes its value from
the preset (or the variant); a value given explicitly always wins, so the old parameter
names (`mode`, `n`, `warmup`, `window`, `top_logprobs`, `keep_percent`, `consensus`,
`in_flight`) keep meaning what they meant.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from parareason.policies.confidence_window import MEASURES

PRESETS: dict[str, dict[str, float | int]] = {
    "paper": {"window": 2048, "top_logprobs": 20, "warmup": 16, "consensus": 0.95, "in_flight": 0,
              "keep_percent": 90.0},
    "cpu": {"window": 64, "top_logprobs": 5, "warmup": 4, "consensus": 0.95, "in_flight": 2,
            "keep_percent": 90.0},
}
VARIANTS: dict[str, float] = {"low": 10.0, "high": 90.0}  # keep_percent (eta)


@dataclass
class DeepConfParams:
    n: int = 16
    mode: str = "online"  # online | offline
    preset: str = "paper"  # paper | cpu: the values of every field below left at None
    variant: str | None = None  # low (keep top 10%) | high (keep top 90%)
    measure: str = "lowest"  # lowest | bottom10 | tail | mean: offline filter and vote weight
    window: int | None = None  # tokens per group
    top_logprobs: int | None = None  # alternatives per token (0: the sampled token's logprob)
    keep_percent: float | None = None  # eta: keep the top eta% (offline) / threshold percentile (online)
    warmup: int | None = None  # online calibration traces
    consensus: float | None = None  # online: stop once the leader holds this weighted share (1.0 = off)
    in_flight: int | None = None  # online: main traces live at once after warm-up (0 = all at once)
    give_up_after: int = 0  # online: stop once this many traces ended with no answer repeated (0 = off)
    stop_when_decided: bool = True  # online: stop once the remaining traces cannot change the winner
    temperature: float | None = None
    max_new_tokens: int | None = None

    def resolved(self) -> "DeepConfParams":
        """A copy with every None setting filled in from the preset and variant; raises
        ValueError on an unknown name or a contradiction."""
        if self.mode not in ("online", "offline"):
            raise ValueError(f"deepconf mode must be online or offline, not {self.mode!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"deepconf preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        if self.variant is not None and self.variant not in VARIANTS:
            raise ValueError(f"deepconf variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        if self.measure not in MEASURES:
            raise ValueError(f"deepconf measure must be one of {', '.join(MEASURES)}, not {self.measure!r}")
        base = dict(PRESETS[self.preset])
        if self.variant is not None:
            eta = VARIANTS[self.variant]
            if self.keep_percent is not None and float(self.keep_percent) != eta:
                raise ValueError(f"deepconf variant={self.variant!r} keeps the top {eta:g}%, "
                                 f"but keep_percent={self.keep_percent} was also given")
            base["keep_percent"] = eta
        given = {f.name: getattr(self, f.name) for f in fields(self) if f.name in base}
        out = replace(self, **{k: (base[k] if v is None else v) for k, v in given.items()})
        if not 0.0 < float(out.consensus) <= 1.0:
            raise ValueError(f"deepconf consensus must be in (0, 1], not {out.consensus}")
        return out

    def settings(self) -> dict:
        """The resolved settings, for Decision.details and the trace."""
        r = self.resolved()
        return {k: getattr(r, k) for k in ("mode", "preset", "variant", "measure", "n", "window",
                                           "top_logprobs", "keep_percent", "warmup", "consensus",
                                           "in_flight", "give_up_after", "stop_when_decided")}

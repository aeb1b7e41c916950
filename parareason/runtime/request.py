"""What a caller hands the scheduler: one reasoning request."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parareason.backends.base import SamplingParams
from parareason.runtime.limits import Limits
from parareason.runtime.policy import Policy


@dataclass
class RequestSpec:
    id: str
    prompt: str  # user text; control markers inside it are data and never parsed
    policy: Policy  # a fresh instance per request (policies keep per-request state)
    protocol: str = "plain"  # name in the protocol registry (runtime/protocols)
    protocol_config: dict[str, Any] = field(default_factory=dict)  # marker strings, N paths, ...
    reference: str | None = None  # gold answer -> Result.correct via grading.is_correct
    # Base sampling settings of every sample (SampleOverrides change them per sample).
    # max_new_tokens caps each thread (ending it with reason "length"); seed is the root of
    # the per-thread seeds (None = unseeded sampling); stop strings add to protocol markers.
    params: SamplingParams = field(default_factory=SamplingParams)
    limits: Limits = field(default_factory=Limits)
    system_prompt: str | None = None  # None = the protocol's default instructions
    keep_trace: bool = True

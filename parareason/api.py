"""Python API: `parareason.run(...)` and a reusable `Engine`.

    import parareason
    results = parareason.run(["What is 17 * 3?"], model="smollm2-135m", policy="sc", n=4)

    engine = parareason.Engine(model="qwen2.5-0.5b-coder")   # loads the model once
    for policy in ("sc", "ffs"):
        results = engine.run(dataset_rows, policy=policy, n=8)
    results = await engine.arun(prompts, policy="deepconf")  # asyncio-friendly

Prompts are strings or dicts (`prompt`/`question`, optional `id`, `answer` and per-row
overrides, as in a prompts JSONL file). Each call returns one `Result` per prompt, in
input order. Policies are names (see `parareason.policies.POLICY_NAMES`) or Policy
instances; an instance is copied for every request (policies keep per-request state).
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from parareason.backends.base import Backend, SamplingParams
from parareason.backends.registry import DEFAULT_BACKEND, load_backend
from parareason.io.prompts import PromptRow, normalize_items
from parareason.models import DEFAULT_MODEL
from parareason.policies.build import policy_for_row
from parareason.runtime.driver import drive_scheduler, request_seed
from parareason.runtime.limits import Limits
from parareason.runtime.policy import Policy
from parareason.runtime.protocols import get_protocol, with_default_dialect
from parareason.runtime.request import RequestSpec
from parareason.runtime.result import Result

PromptLike = str | Mapping[str, Any] | PromptRow


@dataclass
class RunOptions:
    """Settings of one run; per-prompt overrides (n, temperature, ...) win over these."""

    policy: str | Policy = "sc"
    policy_args: dict[str, Any] = field(default_factory=dict)
    protocol: str = "plain"
    protocol_args: dict[str, Any] = field(default_factory=dict)  # protocol options, e.g. {"dialect": "trained"}
    n: int | None = None  # the policy's sample count (None: the policy's default)
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int = 0
    budget: int | None = None  # generated tokens per request
    deadline: float | None = None  # seconds per request
    max_concurrent: int = 4  # requests sharing the backend's batch
    keep_trace: bool = False  # attach the event trace to each Result


class Engine:
    """A loaded backend, reused across `run` calls (load once, evaluate many times)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, backend: str | Backend = DEFAULT_BACKEND,
                 urls: Sequence[str] = (), **backend_opts: Any):
        self.model = model
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            self.backend = load_backend(backend, model, urls, **backend_opts)
        self._lock = threading.Lock()  # one scheduler loop at a time drives the backend

    def build_request(self, row: PromptRow, opts: RunOptions) -> RequestSpec:
        o = row.overrides
        params = SamplingParams(
            temperature=float(o.get("temperature", opts.temperature)),
            top_p=float(o.get("top_p", opts.top_p)),
            max_new_tokens=int(o.get("max_new_tokens", opts.max_new_tokens)),
            seed=request_seed(int(o.get("seed", opts.seed)), row.id),
        )
        budget = o.get("budget", opts.budget)
        limits = Limits.for_request(max_new_tokens=params.max_new_tokens, budget=budget,
                                    deadline_s=opts.deadline)
        policy = policy_for_row(o.get("policy"), opts.policy, opts.policy_args, o.get("n", opts.n))
        protocol = o.get("protocol", opts.protocol)
        # the options were given for opts.protocol; a row naming another protocol gets its defaults
        # (for both, a model naming a released checkpoint of the protocol defaults to `trained`)
        protocol_config = with_default_dialect(protocol, self.model,
                                               opts.protocol_args if protocol == opts.protocol else {})
        return RequestSpec(id=row.id, prompt=row.prompt, policy=policy, protocol=protocol,
                           protocol_config=protocol_config, reference=row.answer,
                           params=params, limits=limits, keep_trace=opts.keep_trace)

    def run(self, prompts: Iterable[PromptLike], *, on_result: Callable[[Result], None] | None = None,
            on_step: Callable[[dict[str, int]], None] | None = None,
            trace_sink: Callable[[dict[str, Any]], None] | None = None, **opts: Any) -> list[Result]:
        """Run every prompt; returns Results in input order.

        `on_result` is called as each prompt finishes (possibly out of order), `on_step`
        with scheduler-wide figures after each step ({"live_threads", "generated_tokens"}).
        Keyword options are the fields of RunOptions. Where the backend reports facts that
        change results (e.g. SGLang's temperature-scaled logprobs), each Result's
        `details["backend"]` holds them.
        """
        options = opts.pop("options", None) or RunOptions()
        options = replace(options, **opts)
        get_protocol(options.protocol, model=self.model, **options.protocol_args)  # a bad option fails before any work
        rows = normalize_items(prompts)
        specs = [self.build_request(r, options) for r in rows]  # all validated before any work
        facts = dict(self.backend.facts)

        def finished(result: Result) -> None:
            if facts:
                result.details["backend"] = dict(facts)
            if on_result is not None:
                on_result(result)

        with self._lock:
            done = drive_scheduler(self.backend, specs, max_concurrent=options.max_concurrent,
                                   on_result=finished, on_step=on_step, trace_sink=trace_sink)
        return [done[r.id] for r in rows]

    async def arun(self, prompts: Iterable[PromptLike], **opts: Any) -> list[Result]:
        """`run` off the event loop thread: the loop stays free while the backend works."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.run(list(prompts), **opts))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(prompts: Iterable[PromptLike] | PromptLike, *, model: str = DEFAULT_MODEL, backend: str = DEFAULT_BACKEND,
        urls: Sequence[str] = (), **opts: Any) -> list[Result]:
    """One-shot: load the model, run the prompts, release the model."""
    if isinstance(prompts, (str, Mapping, PromptRow)):
        prompts = [prompts]
    with Engine(model, backend=backend, urls=urls) as engine:
        return engine.run(prompts, **opts)

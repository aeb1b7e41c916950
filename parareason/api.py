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
import copy
import hashlib
import os
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from parareason.io.prompts import PromptRow, normalize_items
from parareason.runtime.backends.base import Backend, SamplingParams
from parareason.runtime.limits import Limits
from parareason.runtime.policy import Policy
from parareason.runtime.result import Result

DEFAULT_MODEL = "qwen2.5-0.5b-coder"
PromptLike = str | Mapping[str, Any] | PromptRow


@dataclass
class RunOptions:
    """Settings of one run; per-prompt overrides (n, temperature, ...) win over these."""

    policy: str | Policy = "sc"
    policy_args: dict[str, Any] = field(default_factory=dict)
    protocol: str = "plain"
    n: int | None = None  # the policy's sample count (None: the policy's default)
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int = 0
    budget: int | None = None  # generated tokens per request
    deadline: float | None = None  # seconds per request
    max_concurrent: int = 4  # requests sharing the backend's batch
    keep_trace: bool = False  # attach the event trace to each Result


def load_backend(backend: str = "embedded", model: str = DEFAULT_MODEL, urls: Sequence[str] = (),
                 **opts: Any) -> Backend:
    """Build a backend by kind: embedded (in-process engine) or sglang (HTTP client)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local packages only
    if backend == "embedded":
        from parareason.runtime.backends.transformers_engine import load_backend as load_embedded

        return load_embedded(model, **opts)
    if backend == "sglang":
        if not urls:
            raise ValueError("the sglang backend needs at least one server URL")
        from parareason.runtime.backends.sglang import load_sglang_backend
        from parareason.runtime.backends.transformers_engine import load_tokenizer

        return load_sglang_backend(list(urls), load_tokenizer(model), **opts)
    if backend == "scripted":  # deterministic TEST DOUBLE for CLI tests, never a default
        return _scripted_test_double()
    raise ValueError(f"unknown backend {backend!r}; use 'embedded' or 'sglang'")


def _scripted_test_double() -> Backend:
    """The hidden `--backend scripted`: no model; replies come from env variables
    PARAREASON_SCRIPTED_TABLE (JSON {prompt substring: reply}), PARAREASON_SCRIPTED_DEFAULT,
    PARAREASON_SCRIPTED_LATENCY_S (sleep per step) and PARAREASON_SCRIPTED_TOKENS_PER_STEP."""
    import json

    from parareason.runtime.backends.scripted import ScriptedBackend

    env = os.environ
    return ScriptedBackend.from_table(
        json.loads(env.get("PARAREASON_SCRIPTED_TABLE", "{}")),
        default=env.get("PARAREASON_SCRIPTED_DEFAULT", "I think the answer is \\boxed{0}."),
        latency_s=float(env.get("PARAREASON_SCRIPTED_LATENCY_S", "0")),
        tokens_per_step=int(env.get("PARAREASON_SCRIPTED_TOKENS_PER_STEP", "8")))


def make_policy_instance(policy: str | Policy, args: Mapping[str, Any], n: int | None) -> Policy:
    if isinstance(policy, Policy):
        return copy.deepcopy(policy)  # fresh per-request state, the caller's instance untouched
    from parareason.policies import ALIASES, EXTERNAL, make_policy, policy_params

    params = dict(args)
    key = ALIASES.get(policy, policy)
    if n is not None and (key in EXTERNAL or (_has_param(policy_params, key, "n"))):
        params.setdefault("n", n)  # the common sample count; policies without one ignore it
    return make_policy(policy, **params)


def policy_for_row(overrides: Mapping[str, Any], opts: RunOptions) -> Policy:
    """The policy of one prompt: the run's, or the row's own `policy`. The run's
    policy_args go to a row's own policy only where it takes them (so `--policy ffs
    --policy-arg k=2` does not break a row that asks for "sc")."""
    policy = overrides.get("policy", opts.policy)
    args = opts.policy_args
    if policy is not opts.policy and isinstance(policy, str):
        from parareason.policies import ALIASES, policy_params

        try:
            accepted = set(policy_params(ALIASES.get(policy, policy)))
            args = {k: v for k, v in args.items() if k in accepted}
        except KeyError:
            pass  # unknown or external policy: make_policy reports it
    return make_policy_instance(policy, args, overrides.get("n", opts.n))


def _has_param(policy_params: Callable[[str], list[str]], key: str, name: str) -> bool:
    try:
        return name in policy_params(key)
    except KeyError:  # unknown policy: make_policy raises the clear error
        return False


def request_seed(seed: int, prompt_id: str) -> int:
    """A request's seed depends on the run seed and the prompt id only, so results do not
    depend on batch composition or order (and a resumed run repeats an uninterrupted one)."""
    h = hashlib.sha256(f"{seed}\x00{prompt_id}".encode()).digest()
    return int.from_bytes(h[:4], "little")


class Engine:
    """A loaded backend, reused across `run` calls (load once, evaluate many times)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, backend: str | Backend = "embedded",
                 urls: Sequence[str] = (), **backend_opts: Any):
        self.model = model
        if isinstance(backend, Backend):
            self.backend = backend
        else:
            self.backend = load_backend(backend, model, urls, **backend_opts)
        self._lock = threading.Lock()  # one scheduler loop at a time drives the backend

    # --- building requests -------------------------------------------------------------
    def build_request(self, row: PromptRow, opts: RunOptions) -> Any:
        from parareason.runtime.request import RequestSpec

        o = row.overrides
        params = SamplingParams(
            temperature=float(o.get("temperature", opts.temperature)),
            top_p=float(o.get("top_p", opts.top_p)),
            max_new_tokens=int(o.get("max_new_tokens", opts.max_new_tokens)),
            seed=request_seed(int(o.get("seed", opts.seed)), row.id),
        )
        budget = o.get("budget", opts.budget)
        limits = Limits(tokens_per_request=budget, deadline_s=opts.deadline,
                        tokens_per_thread=max(Limits().tokens_per_thread or 0, params.max_new_tokens))
        policy = policy_for_row(o, opts)
        return RequestSpec(id=row.id, prompt=row.prompt, policy=policy,
                           protocol=o.get("protocol", opts.protocol), reference=row.answer,
                           params=params, limits=limits, keep_trace=opts.keep_trace)

    # --- running -----------------------------------------------------------------------
    def run(self, prompts: Iterable[PromptLike], *, on_result: Callable[[Result], None] | None = None,
            on_step: Callable[[dict[str, int]], None] | None = None,
            trace_sink: Callable[[dict[str, Any]], None] | None = None, **opts: Any) -> list[Result]:
        """Run every prompt; returns Results in input order.

        `on_result` is called as each prompt finishes (possibly out of order), `on_step`
        with scheduler-wide figures after each step ({"live_threads", "generated_tokens"}).
        Keyword options are the fields of RunOptions.
        """
        options = opts.pop("options", None) or RunOptions()
        options = replace(options, **opts)
        rows = normalize_items(prompts)
        specs = [self.build_request(r, options) for r in rows]  # all validated before any work
        with self._lock:
            done = drive_scheduler(self.backend, specs, max_concurrent=options.max_concurrent,
                                   on_result=on_result, on_step=on_step, trace_sink=trace_sink)
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


class _StepStats(Backend):
    """Pass-through backend that counts live sequences and generated tokens per step,
    so progress can be shown without reaching into the scheduler."""

    def __init__(self, inner: Backend, on_step: Callable[[dict[str, int]], None]):
        self.inner, self.on_step = inner, on_step
        self.name, self.tokenizer = inner.name, inner.tokenizer
        self._live: set[str] = set()
        self.generated = 0

    def submit(self, req: Any) -> None:
        self._live.add(req.seq_id)
        self.inner.submit(req)

    def step(self, timeout_s: float = 0.05) -> list[Any]:
        updates = self.inner.step(timeout_s)
        for u in updates:
            self.generated += len(u.token_ids)
            if u.finished:
                self._live.discard(u.seq_id)
        self.on_step({"live_threads": len(self._live), "generated_tokens": self.generated})
        return updates

    def abort(self, seq_id: str) -> None:
        self.inner.abort(seq_id)

    def has_work(self) -> bool:
        return self.inner.has_work()


def policy_width(policy: Any) -> int:
    """How many samples a policy runs side by side: its `n` (or DeepPrune's `width`), else 1."""
    for holder in (getattr(policy, "params", None), policy):
        for attr in ("width", "n"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and value > 0:
                return value
    return 1


def drive_scheduler(backend: Backend, specs: Sequence[Any], *, max_concurrent: int,
                    on_result: Callable[[Result], None] | None = None,
                    on_step: Callable[[dict[str, int]], None] | None = None,
                    trace_sink: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Result]:
    """Run specs through one Scheduler so up to `max_concurrent` requests share a batch;
    results arrive in completion order and go to `on_result` at once."""
    from parareason.runtime.scheduler import Scheduler

    backend.expect_concurrency(max_concurrent * max((policy_width(s.policy) for s in specs), default=1))
    sched = Scheduler(_StepStats(backend, on_step) if on_step else backend, trace_sink=trace_sink)
    results: dict[str, Result] = {}
    for result in sched.run(list(specs), max_concurrent=max_concurrent):
        results[result.id] = result
        if on_result is not None:
            on_result(result)
    return results


def run(prompts: Iterable[PromptLike] | PromptLike, *, model: str = DEFAULT_MODEL, backend: str = "embedded",
        urls: Sequence[str] = (), **opts: Any) -> list[Result]:
    """One-shot: load the model, run the prompts, release the model."""
    if isinstance(prompts, (str, Mapping, PromptRow)):
        prompts = [prompts]
    with Engine(model, backend=backend, urls=urls) as engine:
        return engine.run(prompts, **opts)

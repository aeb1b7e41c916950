"""Per-request routing: which policy, protocol, n and budget a request runs with.

Precedence, highest first:
  1. the extension object `"parareason": {"policy", "protocol", "n", "budget", ...}`;
  2. a model-name suffix: `qwen2.5-0.5b-coder+ffs` (policy), `...+ffs+apr` (policy
     and protocol); each `+part` names a policy or a protocol;
  3. the server's defaults (`parareason serve --policy ... --n ...`).

Routing only validates and builds a `RequestSpec`; it never touches the scheduler.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from parareason.backends.base import SamplingParams
from parareason.policies.build import make_policy_instance
from parareason.policies.registry import ALIASES, all_policy_names as policy_names
from parareason.runtime.limits import Limits
from parareason.runtime.policy import Policy
from parareason.runtime.protocols import default_dialect, get_protocol, protocol_names, protocol_options, with_default_dialect
from parareason.runtime.request import RequestSpec
from parareason.server.schemas import ChatMessage, ParareasonOptions

PolicyFactory = Callable[[dict[str, Any]], Policy]

# Policy parameters that name files on the server (judge heads, calibrations): a client
# must not make the server read its disk, so only `--policy-arg` may set them. Checked
# at any depth, since composite policies pass parameters on (sc's inner_params, ...).
SERVER_ONLY_PARAMS = frozenset({"head", "calibration"})


class RoutingError(ValueError):
    """A request the server cannot run as asked: becomes a 400 (or 404) error body."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


@dataclass(frozen=True)
class ServeDefaults:
    """Server-side defaults and caps (the options of `parareason serve`)."""

    model_id: str
    model: str | None = None  # `serve --model` (else model_id): a released checkpoint defaults the dialect to trained
    policy: str = "sc"
    # Server-side policy parameters: "key" applies to the default policy, "policy.key"
    # to that policy whenever a request runs it (e.g. {"deepprune.judge": "answer"}).
    policy_args: dict[str, Any] = field(default_factory=dict)
    protocol: str = "plain"
    protocol_args: dict[str, Any] = field(default_factory=dict)  # `serve --protocol-arg`, for its protocol
    n: int = 4
    max_n: int = 64
    max_new_tokens: int = 512  # per sample, when the client sends no max_tokens
    max_new_tokens_limit: int = 4096
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None  # None: an unseeded request gets a random seed
    budget: int | None = None  # generated tokens per request (all threads)
    deadline_s: float = 300.0
    max_deadline_s: float = 3600.0
    max_prompt_chars: int = 200_000  # question + system text; longer requests get a 400


@dataclass
class Route:
    """The resolved settings of one request."""

    policy: str
    protocol: str
    n: int
    policy_args: dict[str, Any]
    budget: int | None
    deadline_s: float
    params: SamplingParams
    protocol_args: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"policy": self.policy, "protocol": self.protocol, "n": self.n, "budget": self.budget,
                "deadline_s": self.deadline_s, "max_new_tokens": self.params.max_new_tokens,
                "temperature": self.params.temperature, "seed": self.params.seed}


class Router:
    """Turns (model field, extension object, OpenAI sampling fields) into a RequestSpec.

    `extra_policies` adds names the registry does not know (a deployment's own
    policies, or test policies); it is checked before the registry.
    """

    def __init__(self, defaults: ServeDefaults, extra_policies: dict[str, PolicyFactory] | None = None) -> None:
        self.defaults = defaults
        self.extra_policies = dict(extra_policies or {})

    # -- model names -----------------------------------------------------------------
    def model_ids(self) -> list[str]:
        base = self.defaults.model_id
        return [base] + [f"{base}+{p}" for p in sorted({*policy_names(), *self.extra_policies})]

    def split_model(self, model: str) -> tuple[str | None, str | None]:
        """`base+policy+protocol` -> (policy, protocol) from the suffix parts."""
        base, *parts = model.split("+")
        if base != self.defaults.model_id:
            raise RoutingError(f"model {model!r} is not served here; use {self.defaults.model_id!r} "
                               f"(optionally with a +policy / +protocol suffix)", param="model",
                               status=404, code="model_not_found")
        policy = protocol = None
        known_policies = {*policy_names(), *self.extra_policies}
        for part in parts:
            if part in known_policies and policy is None:
                policy = part
            elif part in protocol_names() and protocol is None:
                protocol = part
            else:
                raise RoutingError(f"model suffix +{part!r} is not a policy ({', '.join(sorted(known_policies))}) "
                                   f"or protocol ({', '.join(protocol_names())}), or repeats one",
                                   param="model", status=404, code="model_not_found")
        return policy, protocol

    # -- resolving -------------------------------------------------------------------
    def server_policy_args(self, policy: str) -> dict[str, Any]:
        """The server's parameters for `policy` (see ServeDefaults.policy_args)."""
        canonical = ALIASES.get(policy, policy)
        out: dict[str, Any] = {}
        for key, value in self.defaults.policy_args.items():
            name, dot, param = key.rpartition(".")
            if not dot and policy == self.defaults.policy:
                out[key] = value
            elif dot and ALIASES.get(name, name) == canonical:
                out[param] = value
        return out

    def route(self, *, model: str, options: ParareasonOptions | None, temperature: float | None,
              top_p: float | None, seed: int | None, max_new_tokens: int | None,
              stop: tuple[str, ...], top_logprobs: int = 0) -> Route:
        d = self.defaults
        o = options or ParareasonOptions()
        suffix_policy, suffix_protocol = self.split_model(model)
        policy = o.policy or suffix_policy or d.policy
        protocol = o.protocol or suffix_protocol or d.protocol
        if protocol not in protocol_names():
            raise RoutingError(f"unknown protocol {protocol!r}; choose one of {', '.join(protocol_names())}",
                               param="parareason.protocol")
        protocol_args = self._protocol_args(protocol, o.protocol_args)
        try:  # a bad dialect or option is the client's error, named before anything runs
            get_protocol(protocol, **protocol_args)
        except (ValueError, TypeError) as e:
            raise RoutingError(f"bad protocol_args for {protocol}: {e}", param="parareason.protocol_args") from None
        n = o.n if o.n is not None else d.n
        if n > d.max_n:
            raise RoutingError(f"n={n} is above this server's maximum {d.max_n}", param="parareason.n")
        forbidden = sorted(_keys_deep(o.policy_args) & SERVER_ONLY_PARAMS)
        if forbidden:
            raise RoutingError(f"policy_args {forbidden} name server files and can only be set with "
                               "`parareason serve --policy-arg`", param="parareason.policy_args")
        args = self.server_policy_args(policy)
        args.update(o.policy_args)
        max_new = max_new_tokens if max_new_tokens is not None else d.max_new_tokens
        if max_new > d.max_new_tokens_limit:
            raise RoutingError(f"max_tokens={max_new} is above this server's limit {d.max_new_tokens_limit}",
                               param="max_tokens")
        deadline = o.deadline if o.deadline is not None else d.deadline_s
        if deadline > d.max_deadline_s:
            raise RoutingError(f"deadline {deadline}s is above this server's maximum {d.max_deadline_s}s",
                               param="parareason.deadline")
        if seed is None:
            seed = d.seed if d.seed is not None else random.randrange(2**31)
        params = SamplingParams(temperature=d.temperature if temperature is None else temperature,
                                top_p=d.top_p if top_p is None else top_p, seed=seed,
                                max_new_tokens=max_new, stop_strings=stop, top_logprobs=top_logprobs)
        return Route(policy=policy, protocol=protocol, n=n, policy_args=args,
                     budget=o.budget if o.budget is not None else d.budget, deadline_s=deadline, params=params,
                     protocol_args=protocol_args)

    def build_spec(self, route: Route, request_id: str, prompt: str, system: str | None) -> RequestSpec:
        """Build the request (and its policy). May be slow the first time a DeepPrune
        judge loads, so callers run it off the event loop."""
        policy = self.make_policy(route)
        getattr(policy, "judge", None)  # DeepPrune: load its shared judge here, off the engine loop
        limits = Limits.for_request(max_new_tokens=route.params.max_new_tokens, budget=route.budget,
                                    deadline_s=route.deadline_s)
        return RequestSpec(id=request_id, prompt=prompt, policy=policy, protocol=route.protocol,
                           protocol_config=dict(route.protocol_args), params=route.params, limits=limits,
                           system_prompt=self._system_prompt(route.protocol, route.protocol_args, system),
                           keep_trace=False)

    def make_policy(self, route: Route) -> Policy:
        try:
            if route.policy in self.extra_policies:
                return self.extra_policies[route.policy]({"n": route.n, **route.policy_args})
            return make_policy_instance(route.policy, route.policy_args, route.n)
        except RoutingError:
            raise
        except Exception as e:  # noqa: BLE001 - any bad name/argument is the client's error
            raise RoutingError(f"cannot build policy {route.policy!r}: {e}", param="parareason.policy") from None

    def _protocol_args(self, protocol: str, asked: dict[str, Any]) -> dict[str, Any]:
        """The request's protocol_args over the server's (`serve --protocol-arg`), which apply to
        the served protocol only. A request that switches dialect keeps the server's options
        its dialect also takes (n_paths) and drops the others (the trained dialect's
        finish_ratio would be unknown to the prompted one: a 400 for nothing)."""
        d = self.defaults
        model = d.model or d.model_id
        if protocol != d.protocol:
            return with_default_dialect(protocol, model, dict(asked))
        served = with_default_dialect(protocol, model, d.protocol_args)
        dialect = asked.get("dialect", served.get("dialect", default_dialect(protocol, model)))
        try:
            known = protocol_options(protocol, dialect)
        except ValueError:  # a bad dialect: get_protocol names it
            known = set(served)
        kept = {k: v for k, v in served.items() if k in known}  # the request's dialect, if any, wins below
        return with_default_dialect(protocol, model, {**kept, **asked})

    @staticmethod
    def _system_prompt(protocol: str, protocol_args: dict[str, Any], client_system: str | None) -> str | None:
        """The protocol's instructions (markers, \\boxed{} answers) stay first; a client's
        system message is added after them instead of replacing them."""
        if not client_system:
            return None
        base = get_protocol(protocol, **protocol_args).instructions
        return f"{base}\n\n{client_system}" if base else client_system


def _keys_deep(x: Any) -> set[str]:
    if isinstance(x, dict):
        return set(map(str, x)) | set().union(*(_keys_deep(v) for v in x.values()))
    if isinstance(x, (list, tuple)):
        return set().union(*(_keys_deep(v) for v in x))
    return set()


def check_prompt_size(defaults: ServeDefaults, prompt: str, system: str | None) -> None:
    size = len(prompt) + len(system or "")
    if size > defaults.max_prompt_chars:
        raise RoutingError(f"prompt of {size} characters is above this server's limit of "
                           f"{defaults.max_prompt_chars}", param="messages")


def chat_prompt(messages: list[ChatMessage]) -> tuple[str, str | None]:
    """(question, client system text) of a chat. The runtime reasons over one question:
    earlier turns are kept as a transcript in front of the last user message."""
    system = "\n\n".join(m.text() for m in messages if m.role in ("system", "developer")).strip() or None
    turns = [m for m in messages if m.role not in ("system", "developer")]
    if not turns or turns[-1].role != "user":
        raise RoutingError("the last message must have role 'user'", param="messages")
    question = turns[-1].text()
    if not question.strip():
        raise RoutingError("the last user message is empty", param="messages")
    if len(turns) == 1:
        return question, system
    transcript = "\n\n".join(f"{m.role.capitalize()}: {m.text()}" for m in turns[:-1])
    return f"Conversation so far:\n\n{transcript}\n\nUser: {question}", system

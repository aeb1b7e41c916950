"""Backend registry: the one place that maps a backend name to the code that builds it.

    from parareason.backends.registry import load_backend
    backend = load_backend("embedded", model="qwen2.5-0.5b-coder", dtype="float32")
    backend = load_backend("sglang", model="qwen2.5-0.5b-coder", urls=["http://127.0.0.1:30000"])

Adding a backend is one new folder under `backends/` plus one `BackendSpec` line in
`BACKENDS`. Factories import their package lazily, so naming a backend (for `--help`,
an error message) never loads torch or an HTTP client.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from parareason.backends.base import Backend
from parareason.models import DEFAULT_MODEL

Factory = Callable[..., Backend]  # factory(model, urls, **options) -> Backend


@dataclass(frozen=True)
class BackendSpec:
    """One registered backend: how to build it and what the CLI needs to know of it (the
    CLI reads these fields and never a backend's name)."""

    name: str
    factory: Factory
    help: str
    needs_urls: bool = False  # remote backends talk to servers given by --url
    public: bool = True  # False: accepted but never advertised (test doubles, replay)
    cli: bool = True  # False: not a --backend choice (replay is built by `parareason replay` itself)
    # --model names local files it loads (weights, or an HTTP client's tokenizer), so the
    # CLI checks it before anything starts
    resolves_local_model: bool = False
    takes_engine_options: bool = False  # --dtype / --weights are its load options (a server picks its own)


def _embedded(model: str, urls: Sequence[str], **opts: Any) -> Backend:
    from parareason.backends.embedded import build_engine

    return build_engine(model, **opts)


def _sglang(model: str, urls: Sequence[str], **opts: Any) -> Backend:
    from parareason.backends.embedded import load_tokenizer
    from parareason.backends.sglang import load_sglang_backend

    return load_sglang_backend(list(urls), load_tokenizer(model), **opts)


def _vllm(model: str, urls: Sequence[str], **opts: Any) -> Backend:
    from parareason.backends.embedded import load_tokenizer
    from parareason.backends.vllm import load_vllm_backend

    return load_vllm_backend(list(urls), load_tokenizer(model), **opts)


def _replay(model: str, urls: Sequence[str], *, questions: Sequence[Any], **opts: Any) -> Backend:
    from parareason.backends.replay.backend import ReplayBackend

    return ReplayBackend(questions, **opts)


def _scripted(model: str, urls: Sequence[str], **opts: Any) -> Backend:
    from parareason.backends.scripted import scripted_from_environment

    return scripted_from_environment(**opts)


DEFAULT_BACKEND = "embedded"  # the engine that runs the shipped models on this CPU, no server

BACKENDS: dict[str, BackendSpec] = {
    "embedded": BackendSpec("embedded", _embedded, "in-process CPU engine", resolves_local_model=True,
                            takes_engine_options=True),
    "sglang": BackendSpec("sglang", _sglang, "HTTP client of SGLang server(s)", needs_urls=True,
                          resolves_local_model=True),
    "vllm": BackendSpec("vllm", _vllm, "HTTP client of vLLM server(s) (token ids in and out)", needs_urls=True,
                        resolves_local_model=True),
    "replay": BackendSpec("replay", _replay, "recorded traces, no model (parareason replay)", public=False,
                          cli=False),
    "scripted": BackendSpec("scripted", _scripted, "deterministic TEST DOUBLE, never a default", public=False),
}


def backend_names(*, public_only: bool = False, cli_only: bool = False) -> tuple[str, ...]:
    """Registered names; public_only: those advertised; cli_only: the --backend choices."""
    return tuple(n for n, s in BACKENDS.items() if (s.public or not public_only) and (s.cli or not cli_only))


def backend_spec(name: str) -> BackendSpec:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; use one of: "
                         f"{', '.join(backend_names(public_only=True))}") from None


def load_backend(name: str = DEFAULT_BACKEND, model: str = DEFAULT_MODEL, urls: Sequence[str] = (),
                 **opts: Any) -> Backend:
    """Build a backend by name; `opts` are that backend's own load options."""
    spec = backend_spec(name)
    if spec.needs_urls and not urls:
        raise ValueError(f"the {name} backend needs at least one server URL")
    if urls and not spec.needs_urls:
        raise ValueError(f"the {name} backend takes no server URL")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local packages only
    return spec.factory(model, urls, **opts)

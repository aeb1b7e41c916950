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
    """One registered backend: how to build it and how the CLI shows it."""

    name: str
    factory: Factory
    help: str
    needs_urls: bool = False  # remote backends talk to servers given by --url
    public: bool = True  # False: accepted but never advertised (test doubles, replay)


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


BACKENDS: dict[str, BackendSpec] = {
    "embedded": BackendSpec("embedded", _embedded, "in-process CPU engine"),
    "sglang": BackendSpec("sglang", _sglang, "HTTP client of SGLang server(s)", needs_urls=True),
    "vllm": BackendSpec("vllm", _vllm, "HTTP client of vLLM server(s) (token ids in and out)", needs_urls=True),
    "replay": BackendSpec("replay", _replay, "recorded traces, no model (parareason replay)", public=False),
    "scripted": BackendSpec("scripted", _scripted, "deterministic TEST DOUBLE, never a default", public=False),
}


def backend_names(*, public_only: bool = False) -> tuple[str, ...]:
    return tuple(n for n, s in BACKENDS.items() if s.public or not public_only)


def backend_spec(name: str) -> BackendSpec:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; use one of: "
                         f"{', '.join(backend_names(public_only=True))}") from None


def load_backend(name: str = "embedded", model: str = DEFAULT_MODEL, urls: Sequence[str] = (),
                 **opts: Any) -> Backend:
    """Build a backend by name; `opts` are that backend's own load options."""
    spec = backend_spec(name)
    if spec.needs_urls and not urls:
        raise ValueError(f"the {name} backend needs at least one server URL")
    if urls and not spec.needs_urls:
        raise ValueError(f"the {name} backend takes no server URL")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local packages only
    return spec.factory(model, urls, **opts)

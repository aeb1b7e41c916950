"""Start-up checks of the SGLang client: which workers are healthy, what they serve,
whether their tokenizer reads our token ids as we do, and the server facts that
change results (`server_facts.py`: context length, seeds, logprob scaling).

Run once, before the first request; a problem here is a `BackendError`
(`TokenizerMismatch` for a different vocabulary), never a failed sequence later.
An sglang-router answers /health with 200 whatever its workers do, so a router
is recognised by `GET /workers` and refused with a clear message when none of
its workers is healthy.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Sequence

import httpx

from parareason.backends.base import BackendError, Tokenizer
from parareason.backends.sglang.config import SGLangConfig
from parareason.backends.sglang.errors import TokenizerMismatch
from parareason.backends.sglang.pauses import worker_health
from parareason.backends.http.routing import WorkerPool
from parareason.backends.sglang.server_facts import (
    LOGPROBS_SCALED,
    ServerFacts,
    probe_logprobs,
    router_workers,
    server_info,
)

log = logging.getLogger(__name__)


class StartupChecks:
    """The checks, over the client's shared `httpx.AsyncClient` (run on its loop)."""

    def __init__(self, client: httpx.AsyncClient, config: SGLangConfig, tokenizer: Tokenizer) -> None:
        self.client = client
        self.config = config
        self.tokenizer = tokenizer

    async def run(self, urls: Sequence[str], pool: WorkerPool) -> tuple[dict[str, Any], ServerFacts]:
        """Check every worker; mark the unhealthy ones dead in `pool`; return model info and facts."""
        cfg = self.config
        ready_by = time.monotonic() + cfg.wait_ready_s

        async def wait_healthy(url: str) -> str | None:
            while True:
                problem = await self.health(url)
                if problem is None or time.monotonic() >= ready_by:
                    return problem
                await asyncio.sleep(0.5)

        # Concurrently: one slow or black-holed worker must not delay the others.
        results = await asyncio.gather(*(wait_healthy(u) for u in urls))
        problems = {u: p for u, p in zip(urls, results) if p is not None}
        alive = [u for u in urls if u not in problems]
        for url in problems:
            pool.mark_dead(url)
        if not alive:
            raise BackendError(f"no SGLang worker reachable: {problems}")
        for url, p in problems.items():
            log.warning("SGLang worker %s is down at start-up (%s); its keys fail over", url, p)
        model_info: dict[str, Any] = {}
        facts = ServerFacts()
        for url in alive:
            workers = await self.check_router(url)
            if workers is not None:
                facts.router_workers += workers
            info = await self.model_info(url, is_router=workers is not None)
            if not model_info:
                model_info = info
                facts.read_server_info(await server_info(self.client, url))
            if cfg.check_tokenizer:
                await self.check_tokenizer(url, info)
        if cfg.probe_logprobs:
            probe_ids = list(self.tokenizer.encode(cfg.tokenizer_probes[0]))
            facts.logprobs = await probe_logprobs(self.client, alive[0], probe_ids)
        if cfg.context_length is not None:  # overrides both of the server's figures
            facts.context_length, facts.max_req_input_len = cfg.context_length, None
        self._warn(facts)
        return model_info, facts

    async def check_router(self, url: str) -> list[str] | None:
        """An sglang-router's healthy worker URLs; None when `url` is not a router."""
        workers = await router_workers(self.client, url)
        if workers is None:
            return None
        healthy = [w for w, ok in workers if ok]
        if not healthy:
            raise BackendError(
                f"{url} is an sglang-router with no healthy worker ({len(workers)} listed on /workers); "
                f"its /health answers 200 regardless. Start the workers, or wait for them (wait_ready_s).")
        return healthy

    @staticmethod
    def _warn(facts: ServerFacts) -> None:
        if facts.logprobs == LOGPROBS_SCALED:
            log.warning("SGLang returns temperature-scaled logprobs (log_softmax(logits / T)); confidence, "
                        "RPC, DeepPrune and tie-breaks read them as T=1 values. Start the server with "
                        "SGLANG_RETURN_ORIGINAL_LOGPROB=1 for T=1 logprobs.")
        if not facts.seeds_honoured:
            log.warning("SGLang ignores sampling seeds unless started with --enable-deterministic-inference: "
                        "seeded reruns will not repeat.")

    async def health(self, url: str) -> str | None:
        return await worker_health(self.client, self.config, url)

    async def model_info(self, url: str, is_router: bool = False) -> dict[str, Any]:
        # /model_info first: /get_model_info is deprecated (http_server.py) and logs a warning.
        statuses = []
        for path in ("/model_info", "/get_model_info"):
            r = await self.client.get(f"{url}{path}")
            if r.status_code == 200:
                info = r.json()
                if info.get("is_generation") is False:
                    raise BackendError(f"{url} serves a non-generation model: {info}")
                return info
            statuses.append(r.status_code)
        if 503 in statuses or is_router:
            raise BackendError(f"{url} answers /model_info with HTTP {statuses[0]}: if it is an sglang-router, "
                               f"none of its workers is healthy (its /health answers 200 regardless)")
        raise BackendError(f"{url} answers neither /model_info nor /get_model_info (is it SGLang?)")

    async def check_tokenizer(self, url: str, info: dict[str, Any]) -> None:
        """Refuse a server whose tokenizer would read our token ids differently."""
        tok = self.tokenizer
        probes = list(self.config.tokenizer_probes)
        local = [list(tok.encode(p)) for p in probes]
        where = f"server {url} (model {info.get('model_path')!r}) vs local tokenizer {tok.name!r}"
        local_vocab = getattr(tok, "vocab_size", None)
        if local_vocab is not None and info.get("vocab_size") is not None and int(info["vocab_size"]) != int(local_vocab):
            raise TokenizerMismatch(f"vocab size {info['vocab_size']} != {local_vocab}: {where}")
        for path in ("/tokenize", "/v1/tokenize"):
            remote_variants = []
            for add_special in (False, True):
                r = await self.client.post(f"{url}{path}", json={"prompt": probes, "add_special_tokens": add_special})
                tokens = r.json().get("tokens") if r.status_code == 200 else None
                if not isinstance(tokens, list) or len(tokens) != len(probes):
                    break  # absent, or a shape we do not know: try the next way
                remote_variants.append([list(x) for x in tokens])
            if not remote_variants:
                continue
            if local not in remote_variants:
                i = next(i for i in range(len(probes)) if local[i] != remote_variants[0][i])
                raise TokenizerMismatch(
                    f"tokenizer mismatch, {where}: {probes[i]!r} -> server {remote_variants[0][i][:12]} "
                    f"local {local[i][:12]}. Start the server with the runtime's model, or pass the "
                    f"matching tokenizer.")
            return
        for path in ("/detokenize", "/v1/detokenize"):
            r = await self.client.post(f"{url}{path}", json={"tokens": local})
            remote = r.json().get("text") if r.status_code == 200 else None
            if not isinstance(remote, list):
                continue
            expected = [tok.decode(ids) for ids in local]
            if remote != expected:
                raise TokenizerMismatch(f"tokenizer mismatch, {where}: server decodes our ids as {remote!r}, "
                                        f"local decode gives {expected!r}")
            return
        log.warning("%s: server offers no tokenize/detokenize endpoint; tokenizer not verified", where)

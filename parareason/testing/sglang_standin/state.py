"""`StandinState`: what the stand-in's routes and engine thread share.

`SGLangStandin` (server.py) extends it with the lifecycle; the routes (app.py)
and answers (responses.py) see only this, so they do not import the server.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from parareason.backends.base import Backend, GenerationRequest
from parareason.testing.sglang_standin.faults import StandinFaults
from parareason.testing.sglang_standin.modes import StandinModes
from parareason.testing.sglang_standin.radix import RadixRecord
from parareason.testing.sglang_standin.wire import LiveRequest, output_object


class StandinState:
    def __init__(
        self,
        backend: Backend,
        model_path: str | None = None,
        incremental_streaming_output: bool = False,
        step_interval_s: float = 0.0,
        tokenize_endpoints: bool = True,
        detokenize_endpoints: bool = True,
        modes: StandinModes | None = None,
    ) -> None:
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.model_path = model_path or f"standin/{self.tokenizer.name}"
        self.incremental = incremental_streaming_output
        self.step_interval_s = step_interval_s  # pace decoding so tests can act mid-stream
        self.tokenize_endpoints = tokenize_endpoints  # False: answer 404, like a server without them
        self.detokenize_endpoints = detokenize_endpoints
        self.faults = StandinFaults()
        self.modes = modes or StandinModes()  # SGLang behaviours switched on (modes.py)
        self.radix = RadixRecord()
        # Observations for tests.
        self.paths: list[str] = []  # every request's path, in order
        self.generate_requests: list[dict[str, Any]] = []
        self.abort_requests: list[dict[str, Any]] = []  # every /abort_request body
        self.abort_requests_forwarded: list[str] = []  # rids the tokenizer manager passed on ("*": all)
        self.aborted_rids: list[str] = []  # requests those aborts actually stopped
        self.disconnected_rids: list[str] = []
        self.live: dict[str, LiveRequest] = {}  # requests being served, by rid
        self.commands: queue.Queue = queue.Queue()  # ("submit", req) / ("abort", rid) for the engine
        self.stopping = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None  # the HTTP server's loop
        self.tasks: set[asyncio.Task] = set()  # dispatch tasks on that loop

    def chunk(self, live: LiveRequest, out: list[int], lps: list[float], tops: list, finish: dict | None,
              req: GenerationRequest, n_before: int, whole: bool = False) -> dict[str, Any]:
        """A cumulative snapshot, or (incremental streaming, not `whole`) the delta since n_before."""
        lo = n_before if self.incremental and not whole else 0
        return output_object(live, out, lps, tops, finish, req, lo, self.tokenizer)

"""`SGLangStandin`: the test server's lifecycle, state and engine thread.

uvicorn serves `app.py`'s routes in one background thread; a second thread is
the only one that touches the backend (backends need not be thread-safe) and
pushes its updates to the requests' queues on the HTTP loop.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any

import uvicorn

from parareason.backends.base import FINISH_ERROR, Backend, SeqUpdate
from parareason.testing.sglang_standin.app import build_app
from parareason.testing.sglang_standin.state import StandinState


class SGLangStandin(StandinState):
    """Start with `start()` (or `with SGLangStandin(backend) as srv:`); `srv.url` is its address."""

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        """`options`: `StandinState`'s (model_path, incremental_streaming_output, step_interval_s, ...)."""
        super().__init__(backend, **options)
        self.host, self.port = host, port
        self._server: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._engine_thread: threading.Thread | None = None
        self.app = build_app(self)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "SGLangStandin":
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="error",
                                lifespan="off", timeout_graceful_shutdown=1, access_log=False)
        self._server = uvicorn.Server(config)
        self._http_thread = threading.Thread(target=self._server.run, name="standin-http", daemon=True)
        self._http_thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._http_thread.is_alive():
                raise RuntimeError(f"SGLang stand-in did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._engine_thread = threading.Thread(target=self._engine_loop, name="standin-engine", daemon=True)
        self._engine_thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in (self._http_thread, self._engine_thread):
            if t is not None:
                t.join(timeout=5)

    def __enter__(self) -> "SGLangStandin":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ engine thread

    def _engine_loop(self) -> None:
        """The only thread that touches the backend (backends need not be thread-safe)."""
        while not self.stopping.is_set():
            try:
                cmd = self.commands.get(timeout=0 if self.backend.has_work() else 0.05)
                self._run_command(cmd)
                while True:
                    self._run_command(self.commands.get_nowait())
            except queue.Empty:
                pass
            if self.backend.has_work():
                try:
                    updates = self.backend.step(timeout_s=0.01)
                except Exception as e:  # noqa: BLE001 - a crashed backend fails its requests, like a server
                    updates = [SeqUpdate(rid, finished=True, finish_reason=FINISH_ERROR,
                                         error=f"backend step failed: {type(e).__name__}: {e}")
                               for rid, live in list(self.live.items()) if not live.finished]
                    self.stopping.wait(0.05)
                for u in updates:
                    self._dispatch(u)
                if self.step_interval_s:
                    self.stopping.wait(self.step_interval_s)

    def _run_command(self, cmd: tuple) -> None:
        if cmd[0] == "submit":
            self.backend.submit(cmd[1])
        elif cmd[0] == "abort":
            self.backend.abort(cmd[1])

    def _dispatch(self, u: SeqUpdate) -> None:
        live = self.live.get(u.seq_id)
        if live is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(live.updates.put_nowait, u)

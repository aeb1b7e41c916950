"""SGLang backend: an HTTP client of SGLang's native API (does not import sglang)."""
from parareason.backends.sglang.client import SGLangBackend, load_sglang_backend
from parareason.backends.sglang.config import SGLangConfig
from parareason.backends.sglang.errors import RequestFailure, TokenizerMismatch

__all__ = ["SGLangBackend", "SGLangConfig", "load_sglang_backend", "RequestFailure", "TokenizerMismatch"]

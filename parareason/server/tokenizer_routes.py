"""`/tokenizer_info`, `/tokenize`, `/detokenize` at the server root (vLLM's shapes).

lm-evaluation-harness's `local-completions` probes `GET {root}/tokenizer_info` (it
needs an `eos_token` key) and `POST {root}/tokenize`; when both answer it uses the
server's own tokenizer (`tokenizer_backend=remote`) instead of downloading one from
the hub (lm_eval/utils.py `check_remote_tokenizer_support`, `RemoteTokenizer`).
Requests and answers, as it sends and reads them:

    GET  /tokenizer_info -> {"eos_token", "bos_token", "pad_token", "chat_template", "model_max_length", ...}
    POST /tokenize   {"prompt": str, "add_special_tokens": bool} -> {"tokens": [...], "count", "max_model_len"}
    POST /detokenize {"tokens": [...]} -> {"prompt": str}

The tokens are the ones `/v1/completions` scores for a text prompt (no special tokens
unless asked), so a client's context lengths line up with the server's.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from parareason.backends.base import Backend
from parareason.server.context_check import context_limit
from parareason.server.routing import RoutingError


class TokenizeRequest(BaseModel):
    prompt: str
    add_special_tokens: bool = False


class DetokenizeRequest(BaseModel):
    tokens: list[int] = Field(min_length=0)


def tokenizer_info(backend: Backend) -> dict[str, Any]:
    tok = backend.tokenizer
    hf = getattr(tok, "hf", None)  # the embedded engine's HF tokenizer, when there is one
    info: dict[str, Any] = {"tokenizer_name": tok.name, "eos_token_ids": sorted(tok.eos_token_ids),
                            "model_max_length": context_limit(backend)}
    if hf is not None:
        info.update(eos_token=hf.eos_token, bos_token=hf.bos_token, pad_token=hf.pad_token,
                    chat_template=getattr(hf, "chat_template", None), tokenizer_class=type(hf).__name__)
    else:
        eos = sorted(tok.eos_token_ids)
        info.update(eos_token=(getattr(tok, "decode_raw", tok.decode)(eos[:1]) or None) if eos else None,
                    bos_token=None, pad_token=None, chat_template=None)
    return info


def install(app: FastAPI, backend: Backend) -> None:
    @app.get("/tokenizer_info")
    async def _info() -> dict[str, Any]:
        return tokenizer_info(backend)

    @app.post("/tokenize")
    async def _tokenize(body: TokenizeRequest) -> dict[str, Any]:
        tok = backend.tokenizer
        hf = getattr(tok, "hf", None)
        if body.add_special_tokens and hf is not None:
            ids = list(hf.encode(body.prompt, add_special_tokens=True))
        else:
            ids = list(tok.encode(body.prompt))
        return {"tokens": ids, "count": len(ids), "max_model_len": context_limit(backend)}

    @app.post("/detokenize")
    async def _detokenize(body: DetokenizeRequest) -> dict[str, Any]:
        try:
            return {"prompt": backend.tokenizer.decode(body.tokens)}
        except Exception as e:  # noqa: BLE001 - ids outside the vocabulary are the client's error
            raise RoutingError(f"cannot decode these tokens: {e}", param="tokens") from None

"""What goes over the wire to vLLM's OpenAI completions endpoint, and back.

Read off vLLM 0.32 (`vllm/entrypoints/openai/completion/protocol.py` and `serving.py`):
* token ids in: `prompt` is the sequence's exact context as a list of ids;
* token ids out: `return_token_ids` puts each chunk's new ids in `choices[0].token_ids`,
  and `return_tokens_as_token_ids` names logprob tokens `token_id:<id>`, so nothing is
  re-tokenized; `skip_special_tokens=false` keeps markers such as `<|im_end|>` intact;
* logprobs: `logprobs=K` gives the sampled token's logprob plus up to K alternatives
  (vLLM's `--max-logprobs` caps K, 20 by default). They are the model's raw logprobs
  (`logprobs_mode="raw_logprobs"`, before temperature), as the embedded engine reports;
* `stream_options.include_usage` ends the stream with a usage chunk whose
  `prompt_tokens_details.cached_tokens` (with `--enable-prompt-tokens-details`) says how
  much of the context the prefix cache served;
* finish: `finish_reason` "stop" with `stop_reason` None (EOS), an int (a stop token) or a
  str (a stop string); "length"; "abort" (the server gave up on it) becomes an error;
* the client's `request_id` names the request in vLLM's logs; closing the stream aborts it.

Why `/v1/completions` and not vLLM's token-in/token-out `POST /inference/v1/generate`
(`vllm/entrypoints/scale_out/token_in_token_out/api_router.py`): that route takes
`token_ids` plus vLLM's own `sampling_params` object and streams `choices[].token_ids`
with numeric logprobs (`logprobs.content[].{token_id, logprob, top_logprobs}`,
`protocol.py` `GenerateRequest`, `GenerateTokensStreamResponse`), but vLLM 0.32 registers
it only on a server started with `--enable-scale-out` or `--tokens-only`; any other
server answers it 403 "Scale-out endpoints are disabled" (`scale_out/factories.py`). A
`--tokens-only` server also refuses stop strings (`token_in_token_out/serving.py`: no
detokenizer), which the runtime's protocols need. The completions endpoint is on every
`vllm serve` and, with `return_token_ids` and `return_tokens_as_token_ids`, carries the
same facts (ids in, ids and logprobs by id out, cached tokens, stop reason); its cost is
the server detokenizing text this client ignores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parareason.backends.base import (
    FINISH_EOS, FINISH_ERROR, FINISH_LENGTH, FINISH_STOP_STRING, FINISH_STOP_TOKEN, GenerationRequest,
)

TOKEN_ID_PREFIX = "token_id:"


def completion_body(req: GenerationRequest, *, model: str, request_id: str, max_tokens: int,
                    max_logprobs: int) -> dict[str, Any]:
    p = req.params
    body: dict[str, Any] = {
        "model": model, "prompt": list(req.input_ids), "max_tokens": max_tokens,
        "temperature": p.temperature, "top_p": p.top_p, "stream": True,
        "stream_options": {"include_usage": True}, "logprobs": min(p.top_logprobs, max_logprobs),
        "return_token_ids": True, "return_tokens_as_token_ids": True, "skip_special_tokens": False,
        "spaces_between_special_tokens": False, "request_id": request_id,
    }
    if p.top_k > 0:
        body["top_k"] = p.top_k
    if p.seed is not None:
        body["seed"] = p.seed
    if p.stop_strings:
        body["stop"] = list(p.stop_strings)
    if p.stop_token_ids:
        body["stop_token_ids"] = list(p.stop_token_ids)
    if p.ignore_eos:
        body["ignore_eos"] = True
    return body


def token_id(name: str) -> int:
    if not name.startswith(TOKEN_ID_PREFIX):
        raise ValueError(f"logprob token {name!r} is not {TOKEN_ID_PREFIX}<id> (return_tokens_as_token_ids)")
    return int(name[len(TOKEN_ID_PREFIX):])


@dataclass
class Chunk:
    """One decoded stream event."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    prompt_tokens: int | None = None  # from the final usage chunk
    cached_tokens: int | None = None
    error: str | None = None
    error_code: int | None = None  # the HTTP status an error chunk names (vLLM: 500 for a generation error)


def decode_chunk(data: dict[str, Any], top_k: int) -> Chunk:
    """A parsed `data:` payload of the completions stream -> Chunk."""
    if "error" in data:
        err = data["error"]
        if not isinstance(err, dict):
            return Chunk(error=str(err))
        code = err.get("code")
        return Chunk(error=str(err.get("message", err)), error_code=code if isinstance(code, int) else None)
    out = Chunk()
    usage = data.get("usage")
    if usage:
        out.prompt_tokens = usage.get("prompt_tokens")
        out.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    choices = data.get("choices") or []
    if not choices:
        return out
    choice = choices[0]
    out.token_ids = [int(t) for t in choice.get("token_ids") or []]
    lp = choice.get("logprobs")
    if lp and out.token_ids:
        out.logprobs = [float(x) if x is not None else 0.0 for x in lp.get("token_logprobs") or []]
        if top_k > 0:
            out.top_logprobs = [sorted(((token_id(k), float(v)) for k, v in (alts or {}).items()),
                                       key=lambda kv: -kv[1])[:top_k]
                                for alts in lp.get("top_logprobs") or []]
    if out.token_ids and len(out.logprobs) != len(out.token_ids):
        out.error = f"chunk has {len(out.token_ids)} token ids but {len(out.logprobs)} logprobs"
    out.finish_reason = choice.get("finish_reason")
    out.stop_reason = choice.get("stop_reason")
    return out


def map_finish(finish_reason: str, stop_reason: int | str | None,
               stop_token_ids: tuple[int, ...]) -> tuple[str, int | str | None, str | None]:
    """vLLM's (finish_reason, stop_reason) -> (our finish reason, matched stop, error)."""
    if finish_reason == "stop":
        if isinstance(stop_reason, str):
            return FINISH_STOP_STRING, stop_reason, None
        if isinstance(stop_reason, int) and stop_reason in stop_token_ids:
            return FINISH_STOP_TOKEN, stop_reason, None
        return FINISH_EOS, stop_reason, None
    if finish_reason == "length":
        return FINISH_LENGTH, None, None
    return FINISH_ERROR, None, f"vLLM ended the request with finish_reason {finish_reason!r}"

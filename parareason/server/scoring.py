"""`/v1/completions` with `echo`: prompt scoring (lm-evaluation-harness loglikelihood).

lm-eval's `local-completions` scores a (context + continuation) by sending
`{"prompt": [[ids...]], "echo": true, "logprobs": 1, "max_tokens": 1, "temperature": 0}`
and reading `choices[i].logprobs.token_logprobs[ctxlen:-1]` and `top_logprobs[ctxlen:-1]`
(the last entry is the one generated token). So the response lists every prompt
token (the first with `None`), then `max_tokens` (0 or 1) generated tokens.

This runs no policy and no chat template: the prompt's own tokens (token ids as
sent, or the text through the plain tokenizer, no special tokens added) go through
`Backend.score_prompt` on the engine thread, one forward pass. The one generated
token is the greedy one (the head of the distribution after the prompt), whatever
the temperature: scoring is deterministic. Several prompts per request are fine here.
"""
from __future__ import annotations

from typing import Any

from parareason.backends.base import Backend, BackendError, PromptScores
from parareason.server.context_check import context_error, context_limit
from parareason.server.dispatch import Dispatcher
from parareason.server.logprobs import TokenLogprobs, completion_logprobs, token_decoder
from parareason.server.routing import RoutingError
from parareason.server.schemas import CompletionChoice, CompletionRequest, PromptTokensDetails, UsageInfo


def _check(body: CompletionRequest) -> int:
    if body.stream:
        raise RoutingError("echo cannot be streamed", param="stream")
    if body.max_tokens not in (0, 1):
        raise RoutingError("echo is supported for prompt scoring only: max_tokens must be 0 or 1",
                           param="max_tokens")
    if body.stop_strings():
        raise RoutingError("stop has no meaning for prompt scoring (echo)", param="stop")
    return int(body.max_tokens)


def _choice(index: int, prompt: str | list[int], scores: PromptScores, gen: int, k: int | None,
            decode: Any, tokenizer: Any) -> CompletionChoice:
    ids = scores.input_ids
    lp = TokenLogprobs(list(ids), [None, *scores.logprobs],
                       [[], *scores.top_logprobs] if scores.top_logprobs is not None else None)
    text = prompt if isinstance(prompt, str) else tokenizer.decode(ids)
    if gen:
        tok, value = scores.next_top[0]
        lp.ids.append(tok)
        lp.logprobs.append(value)
        if lp.tops is not None:
            lp.tops.append(scores.next_top[:k])
        text += tokenizer.decode([tok])
    logprobs = completion_logprobs(lp, decode) if k is not None else None
    return CompletionChoice(index=index, text=text, finish_reason="length", logprobs=logprobs)


async def score_completion(body: CompletionRequest, backend: Backend, dispatcher: Dispatcher
                           ) -> tuple[list[CompletionChoice], UsageInfo]:
    gen = _check(body)
    k = body.logprobs
    tokenizer = backend.tokenizer
    prompts = body.prompts()
    id_lists = [tokenizer.encode(p) if isinstance(p, str) else [int(t) for t in p] for p in prompts]
    limit = context_limit(backend)
    for ids in id_lists:
        if not ids:
            raise RoutingError("prompt is empty", param="prompt")
        if limit is not None and len(ids) > limit:
            raise context_error(len(ids), limit, param="prompt", room=0)

    def run() -> list[PromptScores]:
        return [backend.score_prompt(ids, k or 0) for ids in id_lists]

    try:
        scored = await dispatcher.call(run)
    except BackendError as e:
        raise RoutingError(str(e), param="echo", code="unsupported_parameter") from None
    except ValueError as e:  # bad token ids and the like: the client's input
        raise RoutingError(f"cannot score the prompt: {e}", param="prompt") from None
    decode = token_decoder(tokenizer)
    choices = [_choice(i, p, s, gen, k, decode, tokenizer) for i, (p, s) in enumerate(zip(prompts, scored))]
    prompt_tokens = sum(len(ids) for ids in id_lists)
    usage = UsageInfo(prompt_tokens=prompt_tokens, completion_tokens=gen * len(id_lists),
                      total_tokens=prompt_tokens + gen * len(id_lists), prompt_tokens_details=PromptTokensDetails())
    return choices, usage

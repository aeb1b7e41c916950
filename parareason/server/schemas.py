"""Pydantic models of the OpenAI-compatible API (the subset parareason serves).

Requests are validated here; anything outside the supported subset is rejected
with a clear message instead of being silently ignored. Unknown top-level fields
are kept in `model_extra`: OpenAI clients send many harmless optional ones (user,
metadata, ...), and `unsupported.py` refuses those that would change the answer
(tools, response_format, penalties, logit_bias). The `parareason` extension object
is strict. Text fields refuse a lone surrogate (the JSON escape "\ud800" parses, but it
is no Unicode: no tokenizer, trace or result file can hold it), naming the field.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


# OpenAI allows 4; lm-eval's completions model sends a task's `until` list plus the EOS
# string uncut (often more than 4), and checking a few more costs backends little.
MAX_STOP_STRINGS = 16


def valid_unicode(text: str, where: str = "") -> str:
    """`text` unchanged, or a ValueError saying where it holds a lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{where}holds a lone surrogate (U+{ord(text[e.start]):04X} at character "
                         f"{e.start + 1}), which is not valid Unicode") from None
    return text


class ParareasonOptions(BaseModel):
    """The extension object `"parareason": {...}` (openai client: `extra_body=`)."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = None
    protocol: str | None = None
    n: int | None = Field(default=None, ge=1, le=256, description="samples (the policy's n)")
    budget: int | None = Field(default=None, ge=1, description="generated tokens, all threads together")
    deadline: float | None = Field(default=None, gt=0, description="seconds for the whole request")
    policy_args: dict[str, Any] = Field(default_factory=dict)
    protocol_args: dict[str, Any] = Field(default_factory=dict, description="e.g. {\"dialect\": \"trained\"}")


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    @field_validator("content")
    @classmethod
    def _unicode(cls, v: str | list[TextPart] | None) -> str | list[TextPart] | None:
        # here, not on TextPart: a union member's error would be reported once per member
        if isinstance(v, str):
            valid_unicode(v)
        for i, part in enumerate(v if isinstance(v, list) else []):
            valid_unicode(part.text, f"part {i}'s text ")
        return v

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class _SamplingFields(BaseModel):
    """OpenAI sampling fields shared by both endpoints."""

    model_config = ConfigDict(extra="allow")

    model: str
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    parareason: ParareasonOptions | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int | None) -> int | None:
        if v is not None and v != 1:
            raise ValueError("only n=1 choice is returned; set the number of samples with "
                             '"parareason": {"n": ...}')
        return v

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> str | list[str] | None:
        items = [v] if isinstance(v, str) else (v or [])
        if len(items) > MAX_STOP_STRINGS or any(not s for s in items):
            raise ValueError(f"stop takes at most {MAX_STOP_STRINGS} non-empty strings")
        for i, item in enumerate(items):
            valid_unicode(item, f"stop string {i} " if isinstance(v, list) else "")
        return v

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    def max_new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> "ChatCompletionRequest":
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=true")
        return self

    def logprobs_k(self) -> int | None:
        """None: no logprobs; else how many alternatives per token."""
        return (self.top_logprobs or 0) if self.logprobs else None


Prompt = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(_SamplingFields):
    prompt: Prompt = Field(union_mode="left_to_right")
    max_tokens: int | None = Field(default=None, ge=0)  # 0 only with echo (prompt scoring)
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=20)
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, v: Prompt) -> Prompt:
        if isinstance(v, list) and (not v or any(isinstance(p, list) and not p for p in v)):
            raise ValueError("prompt is empty")
        texts = [v] if isinstance(v, str) else [p for p in v if isinstance(p, str)]
        for i, text in enumerate(texts):
            valid_unicode(text, f"prompt {i} " if isinstance(v, list) else "")
        return v

    @field_validator("suffix", "best_of")
    @classmethod
    def _unsupported(cls, v: Any, info: Any) -> Any:
        harmless = v is None or (info.field_name == "best_of" and v == 1)
        if not harmless:
            raise ValueError(f"{info.field_name} is not supported by parareason serve")
        return v

    def prompts(self) -> list[str | list[int]]:
        """Each prompt of the request: text, or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]

    def max_new_tokens(self) -> int | None:
        return self.max_tokens

    def logprobs_k(self) -> int | None:
        return self.logprobs


# --- responses -----------------------------------------------------------------------
class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0  # context tokens whose KV was reused (prefix sharing), all threads


class UsageInfo(BaseModel):
    """All tokens of all threads (every sample) of the request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: str
    logprobs: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    system_fingerprint: str
    parareason: dict[str, Any]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str
    logprobs: dict[str, Any] | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo
    system_fingerprint: str
    parareason: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "parareason"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

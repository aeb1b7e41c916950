"""Pydantic models of the OpenAI-compatible API (the subset parareason serves).

Requests are validated here; anything outside the supported subset is rejected
with a clear message instead of being silently ignored. Unknown top-level fields
are accepted and ignored, as OpenAI clients send many optional ones (user,
metadata, ...), but the `parareason` extension object is strict.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ParareasonOptions(BaseModel):
    """The extension object `"parareason": {...}` (openai client: `extra_body=`)."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = None
    protocol: str | None = None
    n: int | None = Field(default=None, ge=1, le=256, description="samples (the policy's n)")
    budget: int | None = Field(default=None, ge=1, description="generated tokens, all threads together")
    deadline: float | None = Field(default=None, gt=0, description="seconds for the whole request")
    policy_args: dict[str, Any] = Field(default_factory=dict)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

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

    model_config = ConfigDict(extra="ignore")

    model: str
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | int | None = None
    parareason: ParareasonOptions | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int | None) -> int | None:
        if v is not None and v != 1:
            raise ValueError("only n=1 choice is returned; set the number of samples with "
                             '"parareason": {"n": ...}')
        return v

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | int | None) -> bool | int | None:
        if v:
            raise ValueError("logprobs are not returned by parareason serve")
        return v

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: str | list[str] | None) -> str | list[str] | None:
        items = [v] if isinstance(v, str) else (v or [])
        if len(items) > 4 or any(not s for s in items):
            raise ValueError("stop takes at most 4 non-empty strings")
        return v

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def max_new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_SamplingFields):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=None, ge=1)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) != 1:
            raise ValueError("exactly one prompt per request (send one request per prompt; they are batched)")
        return v

    @field_validator("echo", "suffix", "best_of")
    @classmethod
    def _unsupported(cls, v: Any, info: Any) -> Any:
        harmless = v is None or v is False or (info.field_name == "best_of" and v == 1)
        if not harmless:
            raise ValueError(f"{info.field_name} is not supported by parareason serve")
        return v

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def max_new_tokens(self) -> int | None:
        return self.max_tokens


# --- responses -----------------------------------------------------------------------
class UsageInfo(BaseModel):
    """All tokens of all threads of the request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    parareason: dict[str, Any]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo
    parareason: dict[str, Any]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "parareason"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

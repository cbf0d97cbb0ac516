"""The request bodies of the server, as pydantic models: OpenAI's names and ranges, so that the `openai`
client and anything else that speaks the API fills them as it is. Fields the server does not use
(`user`, `logit_bias`, ...) are accepted and ignored, as other OpenAI-compatible servers do; a value out
of range is a 400 naming the field. Limits that depend on the server's settings (`max_tokens`, `n`, the
prompt's length) are checked by the app against its `Limits`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(Loose):
    type: Literal["text"]
    text: str


class ChatMessage(Loose):
    """One message. `user` is the person the voice talks to (`name`: who, in a group chat), `assistant` is
    NAME, `system` (or `developer`) adds instructions to the voice's own system turn."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class JsonSchemaFormat(Loose):
    name: str = "reply"
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    strict: bool | None = None


class ResponseFormat(Loose):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(Loose):
    include_usage: bool = False


class Sampling(Loose):
    """The sampling fields that chat and text completions share."""

    model: str
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # the newer name of max_tokens
    response_format: ResponseFormat | None = None


class CompletionRequest(Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(default=16, ge=1)  # OpenAI's default for completions


class InputRequest(Loose):
    """Embeddings, classification and likeness: one text or a list of them."""

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)

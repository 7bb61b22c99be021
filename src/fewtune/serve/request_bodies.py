"""The bodies the server's endpoints accept, as pydantic models (what comes back is schemas.py's).

Every text field refuses text that is not valid Unicode with a 422 naming the position, before it
reaches a model; FastAPI refuses a missing or mistyped field the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


def _unicode(value):
    """Refuse text that is not valid Unicode (JSON's "\\ud800" decodes to a lone surrogate, which no
    tokenizer can encode) with a 422 that names the position, before it reaches a model."""
    texts = value if isinstance(value, list) else [value]
    for i, text in enumerate(texts):
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                where = f"item {i}, " if isinstance(value, list) else ""
                raise ValueError(f"{where}character {e.start}: not valid Unicode (a lone surrogate)") from None
    return value


class PredictRequest(BaseModel):
    model: str | None = Field(None, description="A model name from /info; optional when one classifier is served.")
    texts: list[str] = Field(..., min_length=1, description="The texts to classify.")
    text_pairs: list[str] | None = Field(None, description="Second texts, for sentence-pair models.")
    abstain_below: float | None = Field(None, ge=0, le=1,
                                        description="Answer abstain_label when the top probability is below this.")
    abstain_label: str = Field("unknown", max_length=100)

    _valid_text = field_validator("texts", "text_pairs", "abstain_label", "model")(_unicode)

    @field_validator("abstain_below", mode="before")
    @classmethod
    def _a_number(cls, value):
        # JSON's true is no threshold; pydantic would read it as 1.0 and abstain on every text.
        if isinstance(value, bool):
            raise ValueError("abstain_below is a probability between 0 and 1, not true or false")
        return value


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str

    _valid_text = field_validator("content")(_unicode)


class GenerateRequest(BaseModel):
    model: str | None = None
    prompt: str | None = Field(None, description="A user message (dialogue) or a text to continue (lm).")
    messages: list[Message] | None = Field(None, description="A conversation instead of prompt (dialogue models).")
    max_new_tokens: int | None = Field(None, ge=1, description="Default: 64, or the server's limit if lower.")
    temperature: float = Field(0.0, ge=0, le=5)
    top_p: float = Field(0.9, gt=0, le=1)
    repetition_penalty: float = Field(1.1, gt=0, le=10)

    _valid_text = field_validator("prompt", "model")(_unicode)


class TrainRequest(BaseModel):
    texts: list[str] = Field(..., min_length=2)
    labels: list[str] = Field(..., min_length=2)
    method: str | None = Field(None, description="One of the methods /info lists under teach; default: the first.")

    _valid_text = field_validator("texts", "labels", "method")(_unicode)

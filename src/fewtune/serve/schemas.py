"""The shapes of the server's answers, as pydantic models: the OpenAPI schema (/docs, /openapi.json)
types every response, and every refusal shares one error shape.

Requests are validated by their own models in request_bodies.py; these only describe what comes back
(FastAPI checks each answer against them, so the schema cannot drift from the handlers).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

Label = Union[str, int, float, bool]  # a class as the training data had it (CSV labels are text; JSON may be numbers)


class ErrorResponse(BaseModel):
    error: str = Field(..., description="What was wrong, in one line.")
    detail: Optional[list[dict[str, Any]]] = Field(None, description="422 only: pydantic's list of invalid fields.")


ERRORS = {status: {"model": ErrorResponse, "description": what} for status, what in {
    400: "Input the library refuses (e.g. a text pair for a single-text model), or no model named.",
    404: "No such model or job.",
    413: "Over a limit: texts per request, characters per text, body size, new tokens, examples.",
    422: "A malformed request: a missing or wrongly typed field, text that is not valid Unicode, or a body that "
         "is not JSON (not UTF-8, a number of thousands of digits, nesting past the parser's limit).",
    500: "A bug in fewtune (the server log has the traceback); the body is still an ErrorResponse.",
}.items()}


class Health(BaseModel):
    status: Literal["ok"]
    models: int = Field(..., description="Models served now.")
    training: bool = Field(..., description="Whether a training from the page is running.")


class ModelInfo(BaseModel):
    """A served model's card facts; classifiers add classes, multi_label, text_pairs, posterior, calibrated."""

    model_config = ConfigDict(extra="allow")
    name: str
    kind: Literal["classifier", "generator"]
    runtime: str = Field(..., description="pytorch, onnx or static.")
    method: Optional[str] = None
    backbone: Optional[str] = None
    trained: dict[str, Any] = Field(default_factory=dict)
    evaluation: Optional[dict[str, Any]] = None


class TeachInfo(BaseModel):
    backbone: str
    methods: list[str]
    max_examples: int


class Info(BaseModel):
    fewtune: str = Field(..., description="The server's fewtune version.")
    limits: dict[str, int]
    teach: Optional[TeachInfo] = Field(None, description="What the page may train; null when training is off.")
    models: dict[str, ModelInfo]


class Prediction(BaseModel):
    """Single-label: label, probability, abstained; multi-label: labels. Both: probabilities per class.

    unknown_text and warning appear only for a text the model could not read (a static student that
    knows none of its tokens): its probabilities are the class prior, not a reading of the text.
    """

    label: Optional[Label] = None
    probability: Optional[float] = None
    abstained: Optional[bool] = None
    labels: Optional[list[Label]] = None
    probabilities: dict[str, float]
    unknown_text: Optional[bool] = Field(None, description="True when the model knows none of the text's tokens; "
                                                           "absent otherwise.")
    warning: Optional[str] = Field(None, description="Why this prediction is not one to trust, when it is not.")


class Predictions(BaseModel):
    model: str
    runtime: str
    classes: list[Label]
    predictions: list[Prediction]


class Generated(BaseModel):
    model: str
    response: str


class Job(BaseModel):
    job: str
    status: Literal["queued", "running", "done", "failed"]
    method: str
    n_examples: int
    stage: str
    done: float
    total: Optional[float] = None
    fraction: float
    model: Optional[str] = Field(None, description="The served name of the trained model, once done.")
    error: Optional[str] = None
    seconds: Optional[float] = None

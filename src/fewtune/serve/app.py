"""The HTTP API over the Python API: /predict, /generate, /health, /info, /train, and the page at /.

    app = create_app({"reviews": "my-model", "fast": "my-model-onnx"})   # then uvicorn.run(app)

Every handler is a thin call into FewShotClassifier / OnnxClassifier / FewShotGenerator. Requests
over the limits get 413 with a one-line message, malformed ones 422 (a missing or mistyped field, or
a body that is not JSON: not UTF-8, a number of thousands of digits, nesting past the parser's limit),
unknown models 404, input the library refuses 400: {"error": "..."} in every case, never a 500 for a
client's mistake.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import FewtuneError
from ..export.static import UNKNOWN_TEXT
from ..labels import prediction_rows
from . import schemas
from .loaded_models import CLASSIFIER, GENERATOR, Served, check_name, load_served, served_from_classifier
from .request_bodies import GenerateRequest, PredictRequest, TrainRequest
from .teach import Busy, TeachConfig, Teacher

PAGE = Path(__file__).parent / "page"
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}  # the only files served besides index.html


@dataclass
class Limits:
    max_texts: int = 64  # texts per /predict request
    max_text_chars: int = 10_000  # characters per text (prompt, example)
    # A body larger than this is refused before it is parsed: room for max_texts texts at the length
    # limit even as JSON \u escapes (6 bytes a character), not for more.
    max_body_bytes: int = 4_000_000
    max_new_tokens: int = 256
    max_train_examples: int = 256


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- the app --------------------------------------------------------------------------------------
def create_app(models: Mapping[str, str | Path | Served], limits: Limits | None = None, *,
               teach: TeachConfig | bool | None = None, threads: int | None = None) -> FastAPI:
    """An app serving `models` ({name: model folder, exported folder, or a loaded Served}).

    teach: what the page may train (None: TeachConfig(), MiniLM; pass teach=False to turn it off).
    threads: ONNX Runtime intra-op threads for exported models (None: one per core).
    """
    limits = limits or Limits()
    registry: dict[str, Served] = {}
    for name, value in models.items():
        check_name(name)
        registry[name] = value if isinstance(value, Served) else load_served(name, value, threads=threads)
    registry_lock = threading.Lock()

    def add(name: str, clf) -> None:
        with registry_lock:
            registry[name] = served_from_classifier(name, clf, origin="trained on the page")

    def evict(name: str) -> None:
        with registry_lock:
            registry.pop(name, None)

    teacher = None
    if teach is not False:
        config = teach if isinstance(teach, TeachConfig) else TeachConfig()
        config = dataclasses.replace(config, max_examples=min(config.max_examples, limits.max_train_examples))
        teacher = Teacher(config, add, evict)

    app = FastAPIOffline(title="fewtune", version=__version__,
                  description="Few-shot classifiers and generators, served; the page at / tries and teaches them.")
    app.state.registry, app.state.limits, app.state.teacher = registry, limits, teacher
    _errors(app)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    def lookup(name: str | None, kind: str) -> Served:
        with registry_lock:
            if name is None:
                of_kind = [s for s in registry.values() if s.kind == kind]
                if len(of_kind) == 1:
                    return of_kind[0]
                raise ApiError(400, f"name a model: {', '.join(s.name for s in of_kind) or f'no {kind} is served'}")
            served = registry.get(name)
            if served is None:
                raise ApiError(404, f"no model named {name!r}; served: {', '.join(registry) or 'none'}")
        if served.kind != kind:
            route = "/predict" if served.kind == CLASSIFIER else "/generate"
            raise ApiError(400, f"{name!r} is a {served.kind}; use {route}")
        return served

    @app.get("/health", tags=["info"], response_model=schemas.Health)
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(registry), "training": bool(teacher and teacher.busy)}

    @app.get("/info", tags=["info"], response_model=schemas.Info, response_model_exclude_unset=True)
    def info() -> dict[str, Any]:
        with registry_lock:
            described = {name: {"name": name, **s.info} for name, s in registry.items()}
        teach_info = None if teacher is None else {"backbone": teacher.config.backbone,
                                                   "methods": list(teacher.config.methods),
                                                   "max_examples": teacher.config.max_examples}
        return {"fewtune": __version__, "limits": asdict(limits), "teach": teach_info, "models": described}

    @app.get("/info/{name}", tags=["info"], response_model=schemas.ModelInfo, response_model_exclude_unset=True,
             responses=errors(404))
    def info_one(name: str) -> dict[str, Any]:
        with registry_lock:
            served = registry.get(name)
        if served is None:
            raise ApiError(404, f"no model named {name!r}")
        return {"name": name, **served.info}

    @app.post("/predict", tags=["predict"], response_model=schemas.Predictions, response_model_exclude_unset=True,
              responses=errors(400, 404, 413, 422))
    def predict(req: PredictRequest) -> dict[str, Any]:
        served = lookup(req.model, CLASSIFIER)
        _check_texts("texts", req.texts, limits, batch=True)
        inputs: list = req.texts
        if req.text_pairs is not None:
            if len(req.text_pairs) != len(req.texts):
                raise ApiError(422, f"{len(req.texts)} texts but {len(req.text_pairs)} text_pairs")
            _check_texts("text_pairs", req.text_pairs, limits, batch=True)
            inputs = list(zip(req.texts, req.text_pairs))
        model = served.model
        if req.abstain_below is not None and model.multi_label_:
            raise ApiError(400, "abstain_below applies to single-label models (a multi-label model says no label "
                                "below 0.5)")
        # A static student says which texts it could not read (no token in its table): their
        # probabilities are the class prior, and the row says so instead of passing for a prediction.
        flagged = getattr(model, "predict_proba_flagged", None)
        with served.lock:
            proba, unknown = flagged(inputs) if flagged is not None else (model.predict_proba(inputs), None)
        rows = prediction_rows(proba, served.classes, multi_label=model.multi_label_,
                               abstain_below=req.abstain_below, abstain_label=req.abstain_label)
        for row, is_unknown in zip(rows, unknown if unknown is not None else ()):
            if is_unknown:
                row.update(unknown_text=True, warning=UNKNOWN_TEXT)
        return {"model": served.name, "runtime": served.runtime, "classes": served.classes, "predictions": rows}

    @app.post("/generate", tags=["generate"], response_model=schemas.Generated, responses=errors(400, 404, 413, 422))
    def generate(req: GenerateRequest) -> dict[str, Any]:
        served = lookup(req.model, GENERATOR)
        if (req.prompt is None) == (req.messages is None):
            raise ApiError(422, "give exactly one of prompt or messages")
        max_new_tokens = req.max_new_tokens or min(64, limits.max_new_tokens)
        if max_new_tokens > limits.max_new_tokens:
            raise ApiError(413, f"max_new_tokens is {max_new_tokens}; the limit is {limits.max_new_tokens}")
        if req.prompt is not None:
            if len(req.prompt) > limits.max_text_chars:
                raise ApiError(413, f"prompt: {len(req.prompt)} characters; the limit is {limits.max_text_chars}")
            prompt: Any = req.prompt
        else:
            _check_texts("messages", [m.content for m in req.messages], limits)
            prompt = [m.model_dump() for m in req.messages]
        with served.lock:
            reply = served.model.generate(prompt, max_new_tokens=max_new_tokens, temperature=req.temperature,
                                          top_p=req.top_p, repetition_penalty=req.repetition_penalty)
        return {"model": served.name, "response": reply}

    @app.post("/train", status_code=202, tags=["train"], response_model=schemas.Job,
              responses={**errors(400, 413, 422), 403: {"model": schemas.ErrorResponse,
                                                        "description": "Training from the page is off."},
                         409: {"model": schemas.ErrorResponse, "description": "A training is already running."}})
    def train(req: TrainRequest) -> dict[str, Any]:
        if teacher is None:
            raise ApiError(403, "training from the page is turned off on this server")
        if len(req.texts) != len(req.labels):
            raise ApiError(422, f"{len(req.texts)} texts but {len(req.labels)} labels")
        if len(req.texts) > teacher.config.max_examples:
            raise ApiError(413, f"{len(req.texts)} examples; the limit is {teacher.config.max_examples}")
        _check_texts("texts", req.texts, limits)
        _check_texts("labels", req.labels, limits)
        return teacher.start(req.texts, req.labels, req.method).view()

    @app.get("/train/{job}", tags=["train"], response_model=schemas.Job, responses=errors(404))
    def train_status(job: str) -> dict[str, Any]:
        found = teacher.jobs.get(job) if teacher is not None else None
        if found is None:
            raise ApiError(404, f"no training job {job!r}")
        return found.view()

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    @app.get("/page/{file}", include_in_schema=False)
    def page_file(file: str) -> FileResponse:
        if file not in PAGE_FILES:  # a fixed list: a request never names a path on disk
            raise ApiError(404, "not found")
        return FileResponse(PAGE / file, media_type=PAGE_FILES[file])

    return app


def errors(*statuses: int) -> dict[int, dict]:
    """The refusals a route declares in the OpenAPI schema (and 500), all of the one ErrorResponse shape."""
    return {status: schemas.ERRORS[status] for status in (*statuses, 500)}


def _check_texts(field: str, texts: list[str], limits: Limits, *, batch: bool = False) -> None:
    if batch and len(texts) > limits.max_texts:
        raise ApiError(413, f"{field}: {len(texts)} in one request; the limit is {limits.max_texts} (send smaller "
                            "batches)")
    for i, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            raise ApiError(413, f"{field}[{i}]: {len(text)} characters; the limit is {limits.max_text_chars}")


def _errors(app: FastAPI) -> None:
    """One JSON shape for every refusal: {"error": "one line"} (plus pydantic's detail for 422s)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    @app.exception_handler(FewtuneError)
    async def fewtune_error(request: Request, exc: FewtuneError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        if not where and first.get("type") in ("missing", "model_attributes_type", "dict_type", "model_type"):
            # The whole body is wrong (empty, a list, or not sent as JSON): pydantic's words name a dictionary.
            sent = request.headers.get("content-type") or "none"
            message = ('the request body must be a JSON object such as {"texts": ["..."]}, sent with '
                       f"Content-Type: application/json (this request's: {sent})")
        if first.get("type") == "json_invalid":  # loc is ("body", character): say so in words
            reason = (first.get("ctx") or {}).get("error", "cannot parse it")
            message = f"the request body is not valid JSON: {reason} at character {where or 0}"
        detail = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors]
        return JSONResponse({"error": message, "detail": detail}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        problem = _unreadable_body(exc)
        if problem is not None:
            detail = [{"loc": ["body"], "msg": problem, "type": "body_unreadable"}]
            return JSONResponse({"error": problem, "detail": detail}, status_code=422)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the client's mistake: still one JSON line, like every other answer; the server log
        # keeps the traceback.
        import traceback

        traceback.print_exception(exc)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server log has the details"},
                            status_code=500)


def _unreadable_body(exc: HTTPException) -> str | None:
    """What was wrong with a body FastAPI could not parse, or None for any other HTTPException.

    FastAPI answers 400 "There was an error parsing the body" for anything json.loads raises besides
    JSONDecodeError, chaining the cause. Those are all malformed bodies, so 422 as the README promises,
    with a message that names the problem: bytes that are not UTF-8, an integer longer than Python's
    int-string conversion limit (sys.get_int_max_str_digits), or arrays / objects nested past the
    parser's recursion limit.
    """
    import sys

    cause = exc.__cause__
    if exc.status_code != 400 or not isinstance(cause, Exception) or isinstance(cause, HTTPException):
        return None
    if isinstance(cause, UnicodeDecodeError):
        if cause.encoding.replace("-", "").lower() == "utf8":
            return (f"the request body is not valid UTF-8 (byte {cause.start}: {cause.reason}); send the JSON "
                    "encoded as UTF-8")
        return "the request body is not valid UTF-8; send the JSON encoded as UTF-8"
    if isinstance(cause, RecursionError):
        return (f"the body's JSON nests too deeply: the parser's limit is about {sys.getrecursionlimit()} levels of "
                "arrays or objects inside each other; send a flatter body")
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300
        return f"a number in the body has more than {limit} digits; send a shorter number"
    return f"the request body cannot be read as JSON ({type(cause).__name__}: {' '.join(str(cause).split())[:200]})"


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413 before anything parses it.

    The body is read here (at most max_bytes of it) and handed on whole, so a client cannot make the
    server hold a gigabyte of JSON, with or without a Content-Length header.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(send, length)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._refuse(send, str(size).encode() + b"+")
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body, only a disconnect can come
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send, length: bytes) -> None:
        import json

        message = (f"request body of {length.decode(errors='replace')} bytes; the limit is {self.max_bytes}"
                   if length.rstrip(b"+").isdigit() else "invalid Content-Length")
        body = json.dumps({"error": message}).encode()
        status = 413 if length.rstrip(b"+").isdigit() else 400
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

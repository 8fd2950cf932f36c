"""``attnkit serve DIR``: a web page and a JSON API to look inside a trained model.

    GET  /                 the page (static HTML, JS and CSS from attnkit/web, no build step)
    GET  /api/model        what the model is: task, architecture, the options it takes, the limits
    POST /api/inspect      {"text": ...} -> the output and every attention map, tokens on both axes
    POST /api/caption      {"image": base64} -> a captioning model's caption and its attention over the image
    GET  /docs, /openapi.json   the API, documented by FastAPI (Swagger UI's assets served from the
                           fastapi-offline package: the page works without internet)

Every answer to a bad request is a 4xx with a one-line ``{"error": ...}``: an empty or over-long
input, wrong JSON types, an unknown field, a body that is not JSON or not UTF-8, a body over the
size limit, a body that stalls (408, and the connection is closed). The model runs one request at a
time, on one thread of its own (:class:`Queue`), and the server keeps serving after any bad request.

Limits for a public deployment (``GET /api/model`` lists them): the body's size, the input's length
in characters and tokens, the beam and new tokens; a body must arrive within ``BODY_SECONDS``; at most
``MAX_QUEUE`` requests wait for the model, and one that cannot start within ``WAIT_SECONDS`` is turned
away (503 with ``Retry-After``), so a request's time is bounded by the wait plus the work the input
limits allow. The host is 127.0.0.1 unless ``--host`` says otherwise; only the page's own assets are
served as files.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from attnkit import __version__
from attnkit.config import DecodingConfig, GenerationConfig, key_type
from attnkit.errors import UserError
from attnkit.inspection import AttentionMap, Inspection, Inspector, Options, Result
from attnkit.runtime import pick_device

log = logging.getLogger(__name__)

MAX_CHARS = 1000  # characters of input text
MAX_TOKENS = 120  # tokens of input, as the model reads them (a heatmap wider than this is unreadable)
MAX_BODY_BYTES = 16 * 1024
MAX_IMAGE_BODY_BYTES = 4 * 1024 * 1024  # for a captioning model: a base64 image of up to 3 MiB
MAX_BEAM, MAX_NEW_TOKENS = 16, 100
HEADER_SECONDS = 5.0  # a connection's request line and headers must have arrived whole by then (slowloris)
BODY_SECONDS = 10.0  # a request body must have arrived whole by then (a stalled upload holds no connection)
MAX_QUEUE = 32  # requests waiting for the model, beyond which the server answers 503 at once
WAIT_SECONDS = 30.0  # the longest a request waits for the model before it is answered 503
WEB = resources.files("attnkit") / "web"
COURSE = Path(__file__).resolve().parents[2] / "docs" / "course"  # a source checkout's course pages


# -- the API's documents --------------------------------------------------------------------------
class InspectRequest(BaseModel):
    """One input, and the options of the model's task (leave one out for the model's config value)."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"text": "A dog runs on the beach.", "beam": 5,
                                                               "nbest": 3}]})
    text: str = Field(min_length=1, max_length=MAX_CHARS, description="a sentence, a text, or a prompt")
    beam: key_type(DecodingConfig, "beam") | None = Field(None, le=MAX_BEAM,
                                                          description="translation, LM: beam size (1: greedy)")
    nbest: key_type(DecodingConfig, "nbest") | None = Field(None, le=MAX_BEAM,
                                                            description="translation: hypotheses to return (<= beam)")
    method: key_type(GenerationConfig, "method") | None = Field(None, description="LM: how to continue")
    max_tokens: key_type(GenerationConfig, "max_tokens") | None = Field(None, le=MAX_NEW_TOKENS,
                                                                        description="LM: new tokens at most")
    temperature: key_type(GenerationConfig, "temperature") | None = Field(None, le=10.0,
                                                                          description="LM sampling temperature")
    seed: int | None = Field(None, ge=0, description="LM sampling seed (default 0: the same text each time)")


class CaptionRequest(BaseModel):
    """An image, base64 (a ``data:image/...;base64,`` URL as a browser's FileReader makes it, or bare)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    image: str = Field(min_length=1, description="PNG, JPEG, GIF, BMP...: any image Pillow reads, base64")
    beam: key_type(DecodingConfig, "beam") | None = Field(None, le=MAX_BEAM, description="beam size (1: greedy)")


class AttentionView(BaseModel):
    name: str = Field(description="encoder, self, cross or pooling")
    title: str
    row_axis: str
    col_axis: str
    rows: list[str] = Field(description="query tokens")
    cols: list[str] = Field(description="key tokens")
    layers: int
    heads: int
    weights: list[list[list[list[float]]]] = Field(description="(layers, heads, rows, cols), rows sum to 1")
    grid: list[int] | None = Field(None, description="[h, w] when the columns are an image's cells, row-major")

    @classmethod
    def of(cls, m: AttentionMap) -> AttentionView:
        return cls(name=m.name, title=m.title, row_axis=m.row_axis, col_axis=m.col_axis, rows=m.rows,
                   cols=m.cols, layers=m.layers, heads=m.heads, weights=m.weights.round(decimals=4).tolist(),
                   grid=list(m.grid) if m.grid else None)


class InspectResponse(BaseModel):
    task: str
    tokens: list[str] = Field(description="the input as the model read it")
    result: Result
    attention: list[AttentionView] = Field(description="empty for a model without attention")
    seconds: float


class Limits(BaseModel):
    max_chars: int
    max_tokens: int
    max_body_bytes: int
    max_beam: int
    max_new_tokens: int
    body_seconds: float
    max_queue: int
    wait_seconds: float


class ModelInfo(BaseModel):
    name: str
    task: str
    arch: str
    input: Literal["text", "image"] = Field(description="text: POST /api/inspect; image: POST /api/caption")
    options: list[str] = Field(description="the InspectRequest fields this model takes, besides text")
    limits: Limits
    version: str
    course: bool = Field(False, description="whether /course/ serves the course pages (docs/course of a checkout)")


class Error(BaseModel):
    error: str = Field(description="what was wrong, in one line")


ERRORS = {400: {"model": Error, "description": "not JSON, or not UTF-8"},
          408: {"model": Error, "description": "the body did not arrive in time"},
          413: {"model": Error, "description": "the body is over the size limit"},
          422: {"model": Error, "description": "a field is missing, of the wrong type, out of range, or unknown; "
                                               "or the input is empty or too long for the model"},
          503: {"model": Error, "description": "too many requests wait for the model: try again (Retry-After)"}}


# -- limits on the raw body -----------------------------------------------------------------------
class BodyLimits:
    """Reads a request's body before the app does: more than ``max_bytes`` -> 413; a JSON or text
    body that is not UTF-8 -> 400; a body not whole within ``seconds`` -> 408 (and the server closes
    the connection, whose body it did not read to the end). Each a one-line JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int, seconds: float = BODY_SECONDS):
        self.app, self.max_bytes, self.seconds = app, max_bytes, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        too_big = JSONResponse({"error": f"the request body is over the limit of {self.max_bytes} bytes"}, 413)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await too_big(scope, receive, send)
        chunks, size = [], 0
        deadline = time.monotonic() + self.seconds
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                stalled = JSONResponse({"error": f"the request body did not arrive within {self.seconds:g} s"}, 408,
                                       headers={"Connection": "close"})
                return await stalled(scope, receive, send)
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await too_big(scope, receive, send)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        kind = headers.get("content-type", "application/json").split(";")[0].strip()
        if kind.endswith("json") or kind.startswith("text/"):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as err:
                bad = JSONResponse({"error": f"the request body is not valid UTF-8 (byte {body[err.start]:#04x} "
                                             f"at offset {err.start})"}, 400)
                return await bad(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def one_line(err: RequestValidationError) -> str:
    """The first validation error as ``field: message``."""
    first = err.errors()[0]
    if first["type"] == "json_invalid":
        return f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')})"
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown field (fields: {', '.join(InspectRequest.model_fields)})"
    return f"{where or 'body'}: {first['msg']}"


# -- the app --------------------------------------------------------------------------------------
class Queue:
    """The model, one request at a time, on a thread of its own: at most ``size`` requests wait for it,
    none longer than ``seconds`` before it starts; beyond either, a 503 that says so.

    One thread runs every request: PyTorch's CPU kernels keep per-thread pools and scratch memory, so
    a model run from each of the web server's worker threads in turn made the server's memory grow
    fivefold under 16 clients (docs/RELIABILITY.md). A model on ``cuda:N`` makes it that thread's
    current GPU (the current GPU is per thread)."""

    def __init__(self, size: int = MAX_QUEUE, seconds: float = WAIT_SECONDS, device: torch.device | None = None):
        self.size, self.seconds = size, seconds
        on_gpu = device is not None and device.type == "cuda"
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attnkit-model",
                                         initializer=torch.cuda.set_device if on_gpu else None,
                                         initargs=(device,) if on_gpu else ())
        self.count, self.count_lock = 0, threading.Lock()

    def run(self, work: Callable[[], Inspection]) -> Inspection:
        with self.count_lock:
            if self.count > self.size:  # the one running and ``size`` waiting
                raise HTTPException(503, f"the server is busy ({self.size} requests are waiting); try again",
                                    headers={"Retry-After": "1"})
            self.count += 1
        try:
            started = threading.Event()

            def job() -> Inspection:
                started.set()
                return work()

            future = self.worker.submit(job)
            if not started.wait(self.seconds) and future.cancel():
                raise HTTPException(503, f"the server is busy (waited {self.seconds:g} s for the model); try again",
                                    headers={"Retry-After": "1"})
            return future.result()
        finally:
            with self.count_lock:
                self.count -= 1


def make_app(inspector: Inspector, name: str, max_body_bytes: int | None = None, queue: Queue | None = None,
             body_seconds: float = BODY_SECONDS) -> FastAPI:
    queue = queue or Queue()
    if max_body_bytes is None:
        max_body_bytes = MAX_IMAGE_BODY_BYTES if inspector.input == "image" else MAX_BODY_BYTES
    app = FastAPIOffline(title="attnkit", version=__version__, redoc_url=None,  # one docs page, fully offline
                         description=f"Look inside the {inspector.task} model `{name}`: its output for a text "
                                     "and every attention map it computed, with the tokens of both axes.")
    info = ModelInfo(name=name, task=inspector.task, arch=inspector.arch, input=inspector.input,
                     options=sorted(inspector.options),
                     version=__version__,
                     limits=Limits(max_chars=MAX_CHARS, max_tokens=MAX_TOKENS, max_body_bytes=max_body_bytes,
                                   max_beam=MAX_BEAM, max_new_tokens=MAX_NEW_TOKENS, body_seconds=body_seconds,
                                   max_queue=queue.size, wait_seconds=queue.seconds),
                     course=COURSE.is_dir())

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": one_line(err)}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)  # the details in the server's log, not to the client
        return JSONResponse({"error": f"internal error ({type(err).__name__}); the server's log has the details"},
                            500)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(WEB / "index.html"))

    @app.get("/api/model", response_model=ModelInfo, summary="What the model is and what it takes")
    def model() -> ModelInfo:
        return info

    def answer(run: Callable[[], Inspection]) -> InspectResponse:
        start = time.perf_counter()
        try:
            seen = queue.run(run)
        except UserError as err:
            raise HTTPException(422, str(err)) from None
        return InspectResponse(task=seen.task, tokens=seen.tokens, result=seen.result,
                               attention=[AttentionView.of(m) for m in seen.attention],
                               seconds=round(time.perf_counter() - start, 3))

    @app.post("/api/inspect", response_model=InspectResponse, responses=ERRORS,
              summary="Run a text model on a text: its output and its attention")
    def inspect(request: InspectRequest) -> InspectResponse:
        if inspector.input != "text":
            raise HTTPException(422, "this model captions images: POST {\"image\": ...} to /api/caption")
        n = inspector.count_tokens(request.text)
        if n > MAX_TOKENS:
            raise HTTPException(422, f"text: {n} tokens, over the limit of {MAX_TOKENS}")
        options = Options(**request.model_dump(exclude={"text"}))
        return answer(lambda: inspector.inspect(request.text, options))

    @app.post("/api/caption", response_model=InspectResponse, responses=ERRORS,
              summary="Caption an image: the caption and the attention of each word over the image's cells")
    def caption(request: CaptionRequest) -> InspectResponse:
        if inspector.input != "image":
            raise HTTPException(422, "this model reads text: POST {\"text\": ...} to /api/inspect")
        encoded = request.image.split(",", 1)[1] if request.image.startswith("data:") else request.image
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(422, "image: not base64") from None
        return answer(lambda: inspector.inspect_image(data, Options(beam=request.beam)))

    @app.get("/course/{page:path}", include_in_schema=False)
    def course(page: str):
        """A course page (docs/course, Markdown rendered to HTML) or one of its pictures."""
        return course_file(page)

    app.mount("/static", StaticFiles(directory=str(WEB)), name="static")
    app.add_middleware(BodyLimits, max_bytes=max_body_bytes, seconds=body_seconds)
    return app


COURSE_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>attnkit course: {title}</title><link rel="stylesheet" href="/static/style.css"></head>
<body class="course"><p class="muted"><a href="/">&larr; the model</a></p>{body}</body></html>
"""


def course_file(page: str):
    """``docs/course/PAGE``: a .md page as HTML, a picture as itself; anything else, or outside the
    course folder, is a 404."""
    import markdown

    missing = HTTPException(404, f"/course/{page[:80]}: no such course page")  # (no path of the machine)
    try:  # a NUL, a name too long for the file system, a symlink loop: no page either
        path = (COURSE / page).resolve()
        if path.is_dir():
            path = path / "README.md"
        if not COURSE.is_dir() or COURSE.resolve() not in path.parents or not path.is_file():
            raise missing
    except (ValueError, OSError, RuntimeError):
        raise missing from None
    if path.suffix == ".md":
        text = path.read_text(encoding="utf-8")
        title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("# ")), page)
        body = markdown.markdown(text, extensions=["tables", "fenced_code"])
        lang = "ru" if path.parent.name == "ru" else "en"
        return HTMLResponse(COURSE_PAGE.format(lang=lang, title=title, body=body))
    if path.suffix in (".png", ".svg"):
        return FileResponse(str(path))
    raise missing


def check_port(host: str, port: int) -> None:
    """A one-line error now rather than uvicorn's log line after start-up."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(info[0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(info[4])
    except OSError as err:
        raise UserError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, device: str = "auto") -> None:
    """Serve the model of ``model_dir``, run on ``device`` (auto: the GPU when there is one)."""
    import uvicorn

    from attnkit.tasks import load_inspector

    check_port(host, port)
    where = pick_device(device)
    inspector = load_inspector(model_dir, str(where))
    app = make_app(inspector, Path(model_dir).resolve().name, queue=Queue(device=where))
    shown = f"[{host}]" if ":" in host else host
    log.info("serving the %s model %s on %s at http://%s:%d/ (API: /docs; Ctrl-C stops)", inspector.task,
             model_dir, where, shown, port)
    # idle keep-alive connections close after 5 s, as do those whose request line and headers are not whole
    # by then (408); beyond 256 connections at once, 503
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=5, limit_concurrency=256,
                http=header_deadline_protocol())


def header_deadline_protocol(seconds: float = HEADER_SECONDS) -> type:
    """uvicorn's h11 protocol with a deadline for each request's line and headers. uvicorn times out
    an idle keep-alive connection and (here, ``BodyDeadline``) a stalled body, but not a client that
    sends half its headers and then a byte now and then (slowloris): each such connection would be
    held, until the 256 allowed are all taken. The deadline starts when the connection opens and
    again after each response; if no whole request has arrived by then, the connection closes, with a
    408 if part of one had."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    body = json.dumps({"error": f"the request line and headers did not arrive within {seconds:g} s"}).encode()
    late = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body))

    class HeaderDeadline(H11Protocol):
        deadline: asyncio.TimerHandle | None = None
        started = False  # whether a request has begun to arrive since the deadline was set

        def data_received(self, data: bytes) -> None:
            self.started = True
            super().data_received(data)

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.start_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.start_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            super().connection_lost(exc)

        def start_deadline(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            self.deadline, self.started = self.loop.call_later(seconds, self.headers_late), False

        def headers_late(self) -> None:
            self.deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # no whole request yet
                if self.started:  # half a request: say why (an idle connection is closed without a word)
                    self.transport.write(late)
                self.transport.close()

    return HeaderDeadline

"""The recognition API.

    POST /v1/recognize   an image upload (multipart field ``file``, or a raw image body; ``?topk=K&charset=CHARS``)
                         or JSON ``{"strokes": [[[x, y], ...], ...], "topk": 5, "charset": "CHARS"}`` -> top-k
                         characters (``charset``: answer only among these characters, or gb2312-1 / gb2312-2 / gb2312)
    POST /v1/recognize/batch   several images (multipart, repeated field ``file``; ``?topk=K&charset=CHARS``)
                         -> one result each
    GET  /healthz        liveness and what model is loaded
    GET  /               the drawing page (no external resources)
    GET  /docs           the API described on one self-contained page (no CDN); /openapi.json

Every error, whatever raised it, answers ``{"error": ...}`` with a 4xx/5xx status. Memory is
bounded across requests, not per request: one :class:`Budget` holds the bytes of bodies being read
and the pixels of images being decoded; a request that does not fit is refused at once (503 with
``Retry-After``), before its body is read, and nothing queues without bound. Bodies are read in a
stream, cut off at the size limit (chunked uploads included) and at a time limit; headers have
their own time limit (:func:`guarded_protocol`), as has an idle keep-alive connection. Decoding,
drawing and inference run in a bounded worker pool, so the event loop (and /healthz) stays
responsive; the ``Host`` header must name this server (DNS-rebinding guard); the model is loaded once.
"""


import asyncio
import contextlib
import functools
import io
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib import resources

import numpy as np

from ..errors import HccrError


@dataclass
class Limits:
    max_bytes: int = 4 << 20  # request body
    max_pixels: int = 4096 * 4096  # decoded image
    max_points: int = 20_000  # all strokes together
    max_strokes: int = 200
    max_coord: float = 1e6  # |x|, |y| of stroke points
    max_batch: int = 64  # images in one batch request
    max_batch_pixels: int = 2 * 4096 * 4096  # all images of one batch request together
    workers: int = 2  # concurrent inferences
    queue: int = 64  # requests admitted beyond the workers (reading their body or waiting) before 503
    budget_bytes: int = 64 << 20  # bodies being read and held, all requests together
    budget_pixels: int = 3 * 4096 * 4096  # image samples (pixels x bands) being decoded, all requests together
    header_timeout: float = 10.0  # seconds to send a request's headers
    body_timeout: float = 30.0  # seconds to send its body
    keep_alive: float = 5.0  # seconds an idle connection is kept open
    max_connections: int = 1000  # open connections before new ones are answered 503

    def __post_init__(self) -> None:
        """Checked before the model is loaded: a limit of 0 would refuse everything or never start."""
        for name, value in vars(self).items():
            if not value >= (0 if name == "queue" else 1e-3):
                raise HccrError(f"--{name.replace('_', '-')}: must be {'0 or more' if name == 'queue' else 'above 0'}, "
                                f"got {value}")


class ApiError(Exception):
    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.message = status, message
        self.close = close  # the body was not read to its end: the connection cannot be reused


def busy(what: str) -> ApiError:
    return ApiError(503, f"server busy ({what}), try again")


class Budget:
    """What all requests hold at once: body bytes and decoded image samples. ``claim()`` gives a
    request its account; everything it took is given back when the request ends."""

    def __init__(self, nbytes: int, pixels: int):
        self.cap = {"bytes": nbytes, "pixels": pixels}
        self.used = {"bytes": 0, "pixels": 0}
        self.lock = threading.Lock()  # decoding takes pixels in worker threads

    def take(self, kind: str, n: int) -> bool:
        with self.lock:
            if self.used[kind] + n > self.cap[kind]:
                return False
            self.used[kind] += n
            return True

    def give(self, kind: str, n: int) -> None:
        with self.lock:
            self.used[kind] -= n

    @contextlib.contextmanager
    def claim(self):
        held = {"bytes": 0, "pixels": 0}

        def take(kind: str, n: int) -> None:
            if not self.take(kind, n):
                raise busy("memory budget full")
            held[kind] += n

        try:
            yield take
        finally:
            for kind, n in held.items():
                if n:
                    self.give(kind, n)


def image_samples(data: bytes) -> int:
    """Pixels x bands of an encoded image, from its header (nothing decoded); 0 if unreadable
    (decoding will say why)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.width * im.height * max(1, len(im.getbands()))
    except Exception:
        return 0


def decode_image(data: bytes, limits: Limits, take=None) -> np.ndarray:
    """An upload -> gray image; ``take("pixels", n)`` (a :meth:`Budget.claim`) is charged before
    anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    from ..data.images import to_gray

    if not data:
        raise ApiError(422, "empty upload")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > limits.max_pixels:
                raise ApiError(413, f"image is {im.width}x{im.height}; at most {limits.max_pixels} pixels")
            if take is not None:
                take("pixels", im.width * im.height * max(1, len(im.getbands())))
            im.load()
            gray = to_gray(im)
    except ApiError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ApiError(422, "the upload is not an image this server can read") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ApiError(422, f"corrupt image ({e})") from None
    if min(gray.shape) < 2:
        raise ApiError(422, f"the image is {gray.shape[1]}x{gray.shape[0]} pixels: too small to hold a character")
    if gray.max() - gray.min() < 16:
        raise ApiError(422, "the image is blank (no ink)")
    return gray


def render_strokes(strokes: object, limits: Limits) -> np.ndarray:
    from ..data.render import render_cropped

    if not isinstance(strokes, list) or not strokes:
        raise ApiError(422, "strokes must be a non-empty list of strokes, each a list of [x, y] points")
    if len(strokes) > limits.max_strokes:
        raise ApiError(413, f"{len(strokes)} strokes; at most {limits.max_strokes}")
    arrays, points = [], 0
    for s in strokes:
        points += len(s) if isinstance(s, list) else 0
        if points > limits.max_points:  # counted before the points are looked at: the work stays bounded
            raise ApiError(413, f"too many points; at most {limits.max_points}")
        # [x, y] pairs of numbers only: [x, y, t] points or a flat list would reshape into scrambled coordinates
        if not isinstance(s, list) or not all(
                isinstance(q, list) and len(q) == 2 and all(type(v) in (int, float) for v in q) for q in s):
            raise ApiError(422, "each stroke must be a list of [x, y] number pairs (no time or pressure values)")
        try:
            a = np.asarray(s, dtype=np.float64).reshape(-1, 2)
        except (ValueError, TypeError, OverflowError):  # OverflowError: integers of hundreds of digits
            raise ApiError(422, "each stroke must be a list of [x, y] number pairs") from None
        if not np.isfinite(a).all() or (np.abs(a) > limits.max_coord).any():
            raise ApiError(422, f"stroke coordinates must be finite numbers within ±{limits.max_coord:g}")
        if len(a):
            arrays.append(a)
    if not arrays:
        raise ApiError(422, "the drawing is empty")
    pts = np.concatenate(arrays)
    if float((pts.max(0) - pts.min(0)).max()) < 2:
        raise ApiError(422, "the drawing is under 2 units across (a dot): draw a character, its points in pixels "
                            "of the canvas as the drawing page sends them")
    # the renderer and the typical pen of the online training data (hccr.data.render)
    return render_cropped(arrays, size=64)


JSON_KEYS = ("strokes", "topk", "charset")
QUERY_KEYS = ("topk", "charset")
CHARSET_NAMES = ("gb2312-1", "gb2312-2", "gb2312")
MAX_CHARSET = 10_000  # characters in one request's charset


def check_charset(value: object) -> str | list[str] | None:
    """A request's ``charset``: one of :data:`CHARSET_NAMES` (any case) or the characters themselves, never a file
    name (a client must not make the server read its files)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CHARSET:
        raise ApiError(422, f"charset must be a non-empty string of at most {MAX_CHARSET} characters, or one of "
                            f"{', '.join(CHARSET_NAMES)}")
    return value.lower() if value.lower() in CHARSET_NAMES else list(dict.fromkeys(value))


def parse_strokes_json(body: bytes, default_topk: int) -> tuple[object, int, object]:
    """The strokes, topk (the body's, else ``default_topk``) and charset (the body's, else None) of a JSON body."""
    import json

    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError, and integers past Python's digit limit
        raise ApiError(422, "body is not valid JSON (or holds a number too long to read)") from None
    except RecursionError:
        raise ApiError(422, "JSON nested too deeply") from None
    if not isinstance(payload, dict) or "strokes" not in payload:
        raise ApiError(422, 'JSON body must be an object with "strokes": [[[x, y], ...], ...]')
    unknown = sorted(k for k in payload if k not in JSON_KEYS)
    if unknown:  # a guessed name ("allowed") must not pass as an unrestricted answer
        raise ApiError(422, f"unknown JSON key(s) {', '.join(map(repr, unknown[:5]))}: the body takes "
                            f"{', '.join(JSON_KEYS)}")
    k = payload.get("topk", default_topk)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
        raise ApiError(422, "topk must be an integer from 1 to 50")
    return payload["strokes"], k, check_charset(payload.get("charset"))


def query_options(request, default_topk: int) -> tuple[int, object]:
    """``?topk=K&charset=CHARS`` (JSON strokes may carry their own in the body), or the server's defaults."""
    unknown = sorted(k for k in request.query_params if k not in QUERY_KEYS)
    if unknown:
        raise ApiError(422, f"unknown query parameter(s) {', '.join(map(repr, unknown[:5]))}: the API takes "
                            f"{', '.join(QUERY_KEYS)}")
    allowed = check_charset(request.query_params.get("charset"))
    raw = request.query_params.get("topk")
    if raw is None:
        return default_topk, allowed
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 2) or not 1 <= int(raw) <= 50:
        raise ApiError(422, "topk must be an integer from 1 to 50")
    return int(raw), allowed


DOCS_PAGE = r"""<!doctype html><meta charset="utf-8"><title>hccr API</title>
<style>body{font:15px system-ui,sans-serif;max-width:52em;margin:2em auto}code,pre{background:#f3f3f3}</style>
<h1>hccr API</h1><pre id="d">loading /openapi.json ...</pre>
<script>fetch('openapi.json').then(r=>r.json()).then(s=>{let t='';for(const[p,ops]of Object.entries(s.paths))
for(const[m,o]of Object.entries(ops)){t+=m.toUpperCase()+' '+p+'\n  '+(o.description||o.summary||'').trim()+'\n';
for(const q of o.parameters||[])t+='  ?'+q.name+': '+(q.description||'')+'\n';t+='\n'}
document.getElementById('d').textContent=t})</script>"""


def _schemas():
    """Typed responses, so /docs and /openapi.json describe what the API answers."""
    from pydantic import BaseModel

    class Candidate(BaseModel):
        char: str
        prob: float

    class Recognition(BaseModel):
        candidates: list[Candidate]
        latency_ms: float
        warning: str | None = None

    class ItemResult(BaseModel):
        file: str
        candidates: list[Candidate] | None = None
        warning: str | None = None
        error: str | None = None

    class BatchRecognition(BaseModel):
        results: list[ItemResult]
        latency_ms: float

    class Health(BaseModel):
        status: str
        model: str
        classes: int
        crops: int

    class ErrorBody(BaseModel):
        error: str

    return Recognition, BatchRecognition, Health, ErrorBody


TOPK_QUERY = {"name": "topk", "in": "query", "required": False, "description": "candidates to answer (an upload's; "
              "JSON strokes may carry their own topk in the body)", "schema": {"type": "integer", "minimum": 1,
                                                                            "maximum": 50}}
CHARSET_DOC = ("answer only among these characters (characters the model does not know are left out), or one of "
               "gb2312-1, gb2312-2, gb2312")
CHARSET_QUERY = {"name": "charset", "in": "query", "required": False, "description": CHARSET_DOC + " (an upload's; "
                 "JSON strokes may carry their own in the body)", "schema": {"type": "string", "maxLength": 10_000}}
REQUEST_DOC = {"parameters": [TOPK_QUERY, CHARSET_QUERY], "requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object", "required": ["strokes"], "properties": {
        "strokes": {"type": "array", "description": "strokes, each a list of [x, y] points in pixels of the canvas "
                                                    "(any size; the drawing is framed to its extent)",
                    "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}},
        "topk": {"type": "integer", "minimum": 1, "maximum": 50},
        "charset": {"type": "string", "maxLength": 10_000, "description": CHARSET_DOC}}}}}}}


class HostCheck:
    """Serve only the ``Host`` names given (``*.example.com`` matches subdomains, ``*`` any), answering others with
    the JSON error every other failure has (a DNS-rebinding page cannot reach the API under its own name)."""

    def __init__(self, app, allowed_hosts: list[str]):
        self.app, self.allowed = app, [h.lower() for h in allowed_hosts]

    def allows(self, host: str) -> bool:
        host = host.lower()  # host names are case-insensitive (a browser sends them lower-cased, curl as typed)
        return any(h == "*" or host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.allowed)

    async def __call__(self, scope, receive, send):
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        if scope["type"] in ("http", "websocket"):
            raw = Headers(scope=scope).get("host", "")
            host = raw[1:].split("]")[0] if raw.startswith("[") else raw.split(":")[0]
            if not self.allows(host):
                msg = f"host {raw[:60]!r} is not served here (hccr serve --allow-host names the hosts it answers to)"
                await JSONResponse({"error": msg}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


SEVERAL = "the image looks like several characters (a word or a line); hccr reads one character"  # both endpoints

def create_app(model_path: str | None = None, limits: Limits | None = None, topk: int = 5,
               allowed_hosts: list[str] | None = None):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    from ..runtime import allowed_indices, load_recognizer

    limits = limits or Limits()
    budget = Budget(limits.budget_bytes, limits.budget_pixels)
    rec = load_recognizer(model_path)
    crops = rec.spec.crops
    pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="hccr-infer")
    app = FastAPI(title="hccr", version="1", description="Offline handwritten Chinese character recognition",
                  docs_url=None, redoc_url=None)  # FastAPI's own pages load scripts from a CDN
    app.add_middleware(HostCheck, allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost", "testserver"])
    page = resources.files("hccr.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError):
        headers = {"Retry-After": "1"} if exc.status == 503 else {}
        if exc.close:
            headers["Connection"] = "close"
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(HTTPException)  # 404, 405, ...: the same shape as every other error
    async def _http_error(_req: Request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError):
        return JSONResponse({"error": f"invalid request: {exc.errors()[:1]}"}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):  # a bug, not the client's fault; still JSON
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> str:
        return DOCS_PAGE

    Recognition, BatchRecognition, Health, ErrorBody = _schemas()
    errors = {code: {"model": ErrorBody} for code in (413, 415, 422, 503)}

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict:
        return {"status": "ok", "model": str(model_path or "gb2312"), "classes": len(rec.charset), "crops": crops}

    async def read_body(request: Request, take) -> bytes:
        """The body, charged to the budget before it is read (by its Content-Length) or as it
        arrives (chunked), cut off at the size limit and at the time limit."""
        length = request.headers.get("content-length")
        known = length is not None and length.isdigit()
        if known and int(length) > limits.max_bytes:
            raise ApiError(413, f"request body over {limits.max_bytes} bytes", close=True)
        if known:
            try:
                take("bytes", int(length))
            except ApiError as e:
                e.close = True
                raise
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.body_timeout
        chunks, size = [], 0
        stream = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), max(deadline - loop.time(), 0.001))
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise ApiError(408, f"request body not received within {limits.body_timeout:g} s", close=True) from None
            size += len(chunk)  # counted as it arrives: a chunked upload cannot grow past the limit
            if size > limits.max_bytes:
                raise ApiError(413, f"request body over {limits.max_bytes} bytes", close=True)
            if not known and chunk:
                try:
                    take("bytes", len(chunk))
                except ApiError as e:
                    e.close = True
                    raise
            chunks.append(chunk)
        return b"".join(chunks)

    def known(allowed):
        """A request's charset as the characters the model knows (resolved once, before any work)."""
        if allowed is None:
            return None
        try:
            return [rec.charset[i] for i in allowed_indices(rec.charset, allowed)]
        except HccrError:
            raise ApiError(422, "charset: none of its characters is known to this model") from None

    in_flight = 0  # requests admitted and not yet answered: reading their body, waiting for a worker or running

    @contextlib.contextmanager
    def admitted():
        """Before anything is read: a request that cannot get a worker soon is refused now (the event loop
        runs one handler at a time, so a plain counter is exact)."""
        nonlocal in_flight
        if in_flight >= limits.workers + limits.queue:
            raise ApiError(503, "server busy (all workers and queue places taken), try again", close=True)
        in_flight += 1
        try:
            yield
        finally:
            in_flight -= 1

    @app.post("/v1/recognize/batch", response_model=BatchRecognition, response_model_exclude_none=True,
              responses=errors, openapi_extra={"parameters": [TOPK_QUERY, CHARSET_QUERY],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}})
    async def recognize_batch(request: Request) -> dict:
        """Several images in one multipart request (repeat the field ``file``); each gets its own
        result or its own error, in the order sent."""
        t0 = time.perf_counter()
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise ApiError(415, "send the images as multipart/form-data, field file repeated", close=True)
        k, allowed = query_options(request, topk)
        allowed = known(allowed)
        with admitted(), budget.claim() as take:
            files = await _multipart_files(await read_body(request, take), ctype)
            if not files:
                raise ApiError(422, 'no file fields: repeat a field named "file" once per image')
            if len(files) > limits.max_batch:
                raise ApiError(413, f"{len(files)} images; at most {limits.max_batch} per request")
            samples = sum(image_samples(data) for _, data in files)
            if samples > limits.max_batch_pixels:
                raise ApiError(413, f"the batch's images hold {samples} pixels (x bands) together; at most "
                                    f"{limits.max_batch_pixels} per request: send fewer or smaller images")
            take("pixels", samples)  # the whole batch, before anything is decoded

            def infer() -> list[dict]:
                results, images, where = [], [], []
                for name, data in files:
                    try:
                        images.append(decode_image(data, limits))
                        where.append(len(results))
                        results.append({"file": name})
                    except ApiError as e:
                        results.append({"file": name, "error": e.message})
                if images:
                    for i, cands, several in zip(where, *rec.predict_flagged(images, topk=k, allowed=allowed),
                                                 strict=True):
                        results[i]["candidates"] = [{"char": c, "prob": round(p, 6)} for c, p in cands]
                        if several:
                            results[i]["warning"] = SEVERAL
                del images
                release_memory(samples)
                return results

            results = await asyncio.get_running_loop().run_in_executor(pool, infer)
        return {"results": results, "latency_ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.post("/v1/recognize", response_model=Recognition, response_model_exclude_none=True, responses=errors,
              openapi_extra=REQUEST_DOC)
    async def recognize(request: Request) -> dict:
        """Upload an image (multipart ``file`` or a raw image body) or post JSON strokes."""
        t0 = time.perf_counter()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json", "multipart/form-data", "application/octet-stream") \
                and not ctype.startswith("image/"):
            raise ApiError(415, f"unsupported content type {ctype or '(none)'}: send an image, "
                                "multipart/form-data or application/json strokes", close=True)
        loop = asyncio.get_running_loop()
        k, allowed = query_options(request, topk)  # said before the body is read
        allowed = known(allowed)
        with admitted(), budget.claim() as take:
            body = await read_body(request, take)
            if ctype == "application/json":
                strokes, k, own = parse_strokes_json(body, k)
                allowed = known(own) if own is not None else allowed  # the body's charset is the JSON caller's
                work = partial(render_strokes, strokes, limits)
            elif ctype == "multipart/form-data":
                data = await _multipart_file(body, request.headers.get("content-type", ""))
                work = partial(decode_image, data, limits, take)
            else:
                work = partial(decode_image, body, limits, take)
            try:
                def infer():
                    image = work()  # decoding and drawing off the event loop too
                    out = rec.predict_flagged([image], topk=k, allowed=allowed)
                    release_memory(image.size)
                    return out

                (cands,), (several,) = await loop.run_in_executor(pool, infer)
            except HccrError as e:
                raise ApiError(422, str(e)) from None
        out = {"candidates": [{"char": c, "prob": round(p, 6)} for c, p in cands],
               "latency_ms": round(1000 * (time.perf_counter() - t0), 2)}
        if several:
            out["warning"] = SEVERAL
        return out

    return app


async def _multipart_files(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """``(filename, bytes)`` of every ``file`` field of a multipart body already read (and size-checked)."""
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartParser

    async def one():
        yield body

    try:
        form = await MultiPartParser(Headers({"content-type": content_type}), one(), max_files=1024).parse()
    except Exception:  # malformed multipart: the client's fault
        raise ApiError(422, "malformed multipart body") from None
    fields = sorted({k for k, v in form.multi_items() if k != "file" or isinstance(v, str)})
    if fields:  # a guessed option ("-F charset=...") must not pass as an unrestricted answer
        raise ApiError(422, f"form field(s) {', '.join(map(repr, fields[:5]))}: an upload's form holds its image "
                            "file(s) alone (field \"file\"); give topk and charset in the query "
                            "(?topk=3&charset=..., the characters percent-encoded)")
    return [(u.filename or f"file {i}", await u.read()) for i, u in enumerate(form.getlist("file"))]


async def _multipart_file(body: bytes, content_type: str) -> bytes:
    """The ``file`` field of a multipart body (one image)."""
    files = await _multipart_files(body, content_type)
    if not files:
        raise ApiError(422, 'multipart upload needs a file field named "file"')
    if len(files) > 1:  # answering for the first alone would drop the others without a word
        raise ApiError(422, f"{len(files)} files in one upload: /v1/recognize reads one image; send several to "
                            "/v1/recognize/batch")
    return files[0][1]


def release_memory(decoded: int, threshold: int = 1 << 22) -> None:
    """After a request that decoded a large image, hand freed memory back to the system (glibc
    keeps freed blocks of its worker-thread arenas otherwise: the server's size would stay at its
    peak). A no-op elsewhere."""
    if decoded < threshold:
        return
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def guarded_protocol(header_timeout: float):
    """uvicorn's HTTP/1.1 protocol with a time limit on each request's headers: uvicorn's own
    keep-alive timer stops at the first byte, so a client sending its headers a byte at a time
    would hold a connection forever."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _headers_too_slow(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():  # the next request's headers get the same time
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def server_config(app, host: str, port: int, limits: Limits, log_level: str = "info"):
    """uvicorn's configuration with hccr's time and connection limits."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=guarded_protocol(limits.header_timeout),
                          timeout_keep_alive=int(max(1, limits.keep_alive)), limit_concurrency=limits.max_connections)


def serve(model_path: str | None = None, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          allowed_hosts: list[str] | None = None) -> None:
    import uvicorn

    limits = limits or Limits()
    check_listen(host, port)  # before the model loads: a busy port is said in one line, not in uvicorn's log
    libc = _libc()
    if libc is not None:
        libc.mallopt(-8, 2)  # M_ARENA_MAX: two malloc arenas, not eight per core for the worker threads
    hosts = allowed_hosts or sorted({host, "127.0.0.1", "localhost"} - {"0.0.0.0", "::"})
    if host in ("0.0.0.0", "::") and not allowed_hosts:  # listening everywhere, answering only local names
        print(f"note: --host {host} listens on every interface, but only the Host names {', '.join(hosts)} are "
              "answered: name the ones clients use with --allow-host (e.g. --allow-host 192.168.1.20 --allow-host "
              "myhost.local; '*' for any)", file=sys.stderr)
    uvicorn.Server(server_config(create_app(model_path, limits, allowed_hosts=hosts), host, port, limits)).run()


def check_listen(host: str, port: int) -> None:
    """One line for a ``--host`` that is no address of this machine or a ``--port`` already taken."""
    import errno
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise HccrError(f"--host {host}: not a host name or address this machine knows ({e})") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind(addr)
        except OSError as e:
            hint = {errno.EADDRINUSE: "another server has that port: choose another --port",
                    errno.EADDRNOTAVAIL: "not an address of this machine: give one of its own (or 0.0.0.0)",
                    errno.EACCES: "ports below 1024 need privileges: choose a --port above 1023"}.get(e.errno, "")
            raise HccrError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})"
                            + (f"; {hint}" if hint else "")) from None

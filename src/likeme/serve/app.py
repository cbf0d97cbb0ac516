"""The server's ASGI app: runs as models behind OpenAI's HTTP API, and a chat page at `/`.

    GET  /v1/models              every run served, named by its folder (`likeme` says what each is)
    POST /v1/chat/completions    voice runs: NAME's reply to the chat (stream, n, stop, seed, JSON output)
    POST /v1/completions         voice runs and plain causal LMs: raw continuation (`likeme generate`)
    POST /v1/embeddings          embedder runs
    POST /v1/classify            classifier runs: each text's label and the probability of every label
    POST /v1/likeness            embedder runs with a likeness score: how much each text reads like NAME
    GET  /health                 {"status": "ok", "generating": k, "waiting": m} (no key needed)
    GET  /                       the chat page (static, no network)

Errors are OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with a 4xx for anything
the client can fix; an unexpected failure is a 500 whose body says only to read the server log.
Generation runs in worker threads, at most `Limits.max_concurrent` at a time, with at most
`Limits.max_queue` more waiting; beyond that a request gets a 429 at once. A client that goes away
mid-stream stops its generation after the next token.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import StreamingResponse

from likeme.errors import LikemeError
from likeme.serve import schemas
from likeme.serve.limits import Limits

log = logging.getLogger("likeme.serve")
STATIC = Path(__file__).resolve().parent / "static"


class ApiError(HTTPException):
    """An error for the client: `ApiError(404, "no model 'x'", param="model", code="model_not_found")`.
    An HTTPException, so that FastAPI lets it through from where it reads the body (it turns any other
    exception there into a bare 400)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None):
        super().__init__(status, message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
            status, "invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# -- the models ------------------------------------------------------------------------------------


@dataclass
class Served:
    """One run behind the API: `kind` is voice, classifier or embedder; `obj` what `likeme.load` gave."""

    id: str
    kind: str
    obj: Any
    run: str

    def card(self) -> dict:
        info: dict = {"kind": self.kind, "run": self.run}
        if self.kind == "voice":
            info.update({"as": self.obj.name, "partner": self.obj.partner, "chat": bool(self.obj.name)})
        elif self.kind == "classifier":
            info["labels"] = list(self.obj.labels)
        elif self.kind == "embedder":
            info.update({"as": self.obj.name or None, "likeness": self.obj.calib is not None})
        return {"id": self.id, "object": "model", "created": 0, "owned_by": "likeme", "likeme": info}


def load_models(runs: list[str], *, device=None, backend: str = "torch", precision: str = "auto") -> dict[str, Served]:
    """Each run (folder, name under $LIKEME_HOME/runs, or model name) loaded, named by its folder; voices
    on `backend` (`inference.load_voice`: with llama.cpp, JSON output answers a 400)."""
    from likeme import models
    from likeme.use.load import recipe_of

    served: dict[str, Served] = {}
    for run in runs:
        ref = models.resolve(run)
        recipe = recipe_of(run)
        name = ref.path.name if ref.kind == "run" else str(run)
        if name in served:
            raise LikemeError(f"two models named {name!r}: serve runs from folders with different names")
        if recipe in ("voice", "prefer"):
            from likeme.use.load import load_voice

            kw = {"device": device} if device is not None else {}
            served[name] = Served(name, "voice", load_voice(run, backend=backend, precision=precision, **kw), str(run))
        elif recipe == "classifier":
            from likeme.use.classifier import load_classifier

            served[name] = Served(name, "classifier", load_classifier(run, device=device), str(run))
        elif recipe == "embedder":
            from likeme.use.embedder import load_embedder

            served[name] = Served(name, "embedder", load_embedder(run), str(run))
        else:
            raise LikemeError(f"{run} is a {recipe} run: likeme serve serves voice, classifier and embedder runs")
    if not served:
        raise LikemeError("nothing to serve: name one or more runs (likeme serve runs/ana-voice)")
    return served


# -- the gate: bounded concurrency and queue --------------------------------------------------------


class Gate:
    """At most `concurrent` jobs in worker threads, at most `queue` more waiting; `admit()` says at once
    when there is no room (a 429), so an overloaded server answers fast instead of piling up work."""

    def __init__(self, concurrent: int, queue: int):
        self.concurrent, self.queue = concurrent, queue
        self.pool = ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix="likeme-gen")
        self.running = self.waiting = 0
        self._slots: asyncio.Semaphore | None = None

    @property
    def full(self) -> bool:
        return self.running + self.waiting >= self.concurrent + self.queue

    def busy(self) -> ApiError:
        return ApiError(429, f"the server is busy ({self.running} generating, {self.waiting} waiting): "
                             "try again in a moment", code="server_busy")

    def admit(self) -> Ticket:
        if self.full:
            raise self.busy()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrent)
        return Ticket(self)


class Ticket:
    """One admitted request. `await ticket.run(fn)` waits for a slot, runs fn in a worker thread and returns
    its result; the slot is given back when the thread ends, even if the caller was cancelled meanwhile.
    `close()` gives back a place in the queue that was never used (idempotent)."""

    def __init__(self, gate: Gate):
        self.gate, self.state = gate, "waiting"
        gate.waiting += 1

    async def run(self, fn: Callable[[], Any]) -> Any:
        gate = self.gate
        await gate._slots.acquire()
        gate.waiting -= 1
        gate.running += 1
        self.state = "running"
        future = asyncio.get_running_loop().run_in_executor(gate.pool, fn)
        future.add_done_callback(lambda _: self._done())
        return await asyncio.shield(future)  # a cancelled caller leaves the thread to end (see `cancel`)

    def _done(self) -> None:
        self.gate.running -= 1
        self.gate._slots.release()
        self.state = "done"

    def close(self) -> None:
        if self.state == "waiting":
            self.gate.waiting -= 1
            self.state = "done"


# -- the app ---------------------------------------------------------------------------------------


def create_app(served: dict[str, Served], *, api_key: str | None = None, limits: Limits | None = None,
               log_messages: bool = False):
    """The FastAPI app serving `served` (from `load_models`). `api_key`: every /v1 request must carry
    `Authorization: Bearer KEY` (compared in constant time)."""
    limits = limits or Limits()
    gate = Gate(limits.max_concurrent, limits.max_queue)
    app = FastAPI(title="likeme", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.add_middleware(_BodyLimit, max_bytes=limits.max_body_bytes)
    app.state.gate, app.state.served, app.state.limits = gate, served, limits

    # -- errors: OpenAI's body, never a traceback ------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        headers = {"Retry-After": "1"} if e.status == 429 else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(LikemeError)
    async def _likeme_error(request, e: LikemeError):
        return JSONResponse(ApiError(400, str(e)).body(), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        if first.get("type") == "json_invalid":
            message, where = "the request body is not valid JSON", None
        elif first.get("type") == "missing":
            message = f"missing field {where!r}"
        else:
            message = f"{where}: {first.get('msg', 'invalid value')}" if where else first.get("msg", "invalid request")
        return JSONResponse(ApiError(400, message, param=where or None).body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(request, e: HTTPException):
        return JSONResponse(ApiError(e.status_code, str(e.detail)).body(), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request, e: Exception):
        log.exception("failed: %s %s", request.method, request.url.path)
        return JSONResponse(ApiError(500, "the server failed on this request: its log says why").body(),
                            status_code=500)

    # -- key and body size -------------------------------------------------------------------------
    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if request.url.path.startswith("/v1/"):
            if api_key is not None:
                given = request.headers.get("authorization", "")
                token = given[7:] if given[:7].lower() == "bearer " else ""
                if not hmac.compare_digest(token.encode(), api_key.encode()):
                    e = ApiError(401, "a valid API key is needed: Authorization: Bearer KEY", code="invalid_api_key")
                    return JSONResponse(e.body(), status_code=401)
            if request.method == "POST" and gate.full:  # refused before the body is even read: fast under load
                e = gate.busy()
                return JSONResponse(e.body(), status_code=429, headers={"Retry-After": "1"})
            size = request.headers.get("content-length")
            if size is not None and (not size.isdigit() or int(size) > limits.max_body_bytes):
                e = ApiError(413, f"the request body is over {limits.max_body_bytes} bytes", code="body_too_large")
                return JSONResponse(e.body(), status_code=413)
        return await call_next(request)

    def model_of(name: str, kind: str, endpoint: str) -> Served:
        m = served.get(name)
        if m is None:
            raise ApiError(404, f"no model {name!r} here: GET /v1/models lists them ({', '.join(served)})",
                           param="model", code="model_not_found")
        if m.kind != kind:
            raise ApiError(400, f"{name!r} is a {m.kind} run: {endpoint} takes a {kind} run", param="model",
                           code="wrong_model_kind")
        return m

    async def gated(fn):
        """fn() in a worker thread, through the same gate as generation (a 429 when it is full)."""
        ticket = gate.admit()
        try:
            return await ticket.run(fn)
        finally:
            ticket.close()

    def check_inputs(texts: list[str]) -> None:
        if not texts or len(texts) > limits.max_inputs:
            raise ApiError(400, f"input must hold 1 to {limits.max_inputs} texts", param="input")

    # -- routes --------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health")
    async def health():
        return {"status": "ok", "generating": gate.running, "waiting": gate.waiting}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [m.card() for m in served.values()]}

    @app.get("/v1/models/{name}")
    async def get_model(name: str):
        if name not in served:
            raise ApiError(404, f"no model {name!r} here", param="model", code="model_not_found")
        return served[name].card()

    @app.post("/v1/chat/completions")
    async def chat_completions(body: schemas.ChatRequest):
        m = model_of(body.model, "voice", "/v1/chat/completions")
        voice = m.obj
        if not voice.name:
            raise ApiError(400, f"{m.id} does not say whom it speaks as: chat with a voice run, or use "
                                "/v1/completions for raw text", param="model")
        history, system = history_of(body.messages, voice)
        settings = _settings(body, body.max_completion_tokens or body.max_tokens, limits)
        schema = _response_schema(body.response_format)
        prompt = voice.prompt_ids(history, max_new_tokens=settings["max_new_tokens"], system=system)
        _check_prompt(len(prompt), limits)
        call = dict(json_schema=schema, stop=body.stop_list(), system=system, **settings)
        if log_messages:
            log.info("chat %s <- %s", m.id, json.dumps([x.model_dump(exclude_none=True) for x in body.messages]))
        return await _respond(gate, body, m.id, "chat.completion", len(prompt),
                              lambda **kw: voice.reply(history, **call, **kw))

    @app.post("/v1/completions")
    async def completions(body: schemas.CompletionRequest):
        m = model_of(body.model, "voice", "/v1/completions")
        voice = m.obj
        if isinstance(body.prompt, list) and len(body.prompt) != 1:
            raise ApiError(400, "one prompt per request", param="prompt")
        text = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        settings = _settings(body, body.max_tokens, limits)
        n_prompt = len(voice.tokenizer(text)["input_ids"]) if text else 1
        _check_prompt(n_prompt, limits)
        if log_messages:
            log.info("completion %s <- %s", m.id, json.dumps(text))
        return await _respond(gate, body, m.id, "text_completion", n_prompt,
                              lambda **kw: voice.generate(text, stop=body.stop_list(), **settings, **kw))

    @app.post("/v1/embeddings")
    async def embeddings(body: schemas.InputRequest):
        m = model_of(body.model, "embedder", "/v1/embeddings")
        texts = body.texts()
        check_inputs(texts)
        vecs = await gated(lambda: m.obj.embed(texts))  # (N, D) float32, unit length
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.tobytes()).decode() if body.encoding_format == "base64" else
                 [float(x) for x in v]} for i, v in enumerate(vecs)]
        tokens = sum(len(t.split()) for t in texts)
        return {"object": "list", "data": data, "model": m.id,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/classify")
    async def classify(body: schemas.InputRequest):
        m = model_of(body.model, "classifier", "/v1/classify")
        texts = body.texts()
        check_inputs(texts)
        found = await gated(lambda: m.obj.predict(texts))
        return {"object": "list", "model": m.id, "data": [
            {"index": i, "label": label, "probabilities": probs} for i, (label, probs) in enumerate(found)]}

    @app.post("/v1/likeness")
    async def likeness(body: schemas.InputRequest):
        m = model_of(body.model, "embedder", "/v1/likeness")
        if m.obj.calib is None:
            raise ApiError(400, f"{m.id} has no likeness score: train one with likeme train embedder --as NAME",
                           param="model")
        texts = body.texts()
        check_inputs(texts)
        scores = await gated(lambda: m.obj.score(texts))
        return {"object": "list", "model": m.id, "as": m.obj.name,
                "data": [{"index": i, "score": s} for i, s in enumerate(scores)]}

    return app


# -- pieces of the generation endpoints -------------------------------------------------------------


class _BodyLimit:
    """ASGI middleware: a body sent without Content-Length (chunked) is counted as it arrives, and one
    that grows past `max_bytes` ends in a 413 without being read further (the declared sizes are checked
    in `_guard`, before anything is read)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise ApiError(413, f"the request body is over {self.max_bytes} bytes", code="body_too_large")
            return message

        await self.app(scope, counted, send)


def history_of(messages, voice) -> tuple[list[tuple[str, str]], str | None]:
    """OpenAI messages -> (the voice's history as (author, text) pairs, the extra system text): `prompts.from_openai`."""
    from likeme.prompts import from_openai

    try:
        return from_openai([(m.role, m.name, m.text()) for m in messages], voice.name, voice.partner)
    except LikemeError as e:
        raise ApiError(400, str(e), param="messages") from None


def _settings(body, max_tokens: int | None, limits: Limits) -> dict:
    """The request's sampling fields as `Voice.reply` keywords, checked against the limits."""
    if max_tokens is not None and max_tokens > limits.max_tokens:
        raise ApiError(400, f"max_tokens is {max_tokens}; this server allows at most {limits.max_tokens}",
                       param="max_tokens")
    if body.n > limits.max_n:
        raise ApiError(400, f"n is {body.n}; this server allows at most {limits.max_n}", param="n")
    stops = body.stop_list()
    if len(stops) > 4 or any(len(s) > 64 for s in stops):
        raise ApiError(400, "stop takes at most 4 strings of at most 64 characters", param="stop")
    if body.n > 1 and body.temperature == 0:
        raise ApiError(400, "n > 1 needs sampling: with temperature 0 every reply is the same", param="n")
    out = {"max_new_tokens": max_tokens or limits.default_tokens, "num_return_sequences": body.n}
    if body.temperature is not None:
        out["temperature"] = body.temperature
        if body.temperature == 0:
            out["do_sample"] = False
    if body.top_p is not None:
        out["top_p"] = body.top_p
    if body.seed is not None:
        out["seed"] = body.seed
    return out


def _response_schema(fmt) -> dict | None:
    """response_format -> a compiled JSON schema (or None for text); a schema the grammar engine cannot
    compile is a 400 here, before anything is generated."""
    if fmt is None or fmt.type == "text":
        return None
    from likeme.use.grammar import JSON_OBJECT, compile_schema

    if fmt.type == "json_object":
        return compile_schema(JSON_OBJECT)
    if fmt.json_schema is None:
        raise ApiError(400, 'response_format json_schema needs "json_schema": {"name": ..., "schema": {...}}',
                       param="response_format")
    try:
        return compile_schema(fmt.json_schema.schema_)
    except LikemeError as e:
        raise ApiError(400, str(e), param="response_format", code="invalid_schema") from None


def _check_prompt(n: int, limits: Limits) -> None:
    if n > limits.max_prompt_tokens:
        raise ApiError(400, f"the prompt is {n} tokens; this server allows at most {limits.max_prompt_tokens}",
                       param="messages")


async def _respond(gate: Gate, body, model: str, kind: str, prompt_tokens: int, write: Callable[..., Any]):
    """Run `write(stream=..., cancel=...)` through the gate; a JSON response, or server-sent events."""
    ticket = gate.admit()
    ident = ("chatcmpl-" if kind == "chat.completion" else "cmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    if body.stream:
        return _EventStream(_events(ticket, body, model, kind, ident, created, prompt_tokens, write), ticket)
    try:
        t = time.perf_counter()
        out = await ticket.run(lambda: write())
    finally:
        ticket.close()
    outs = out if isinstance(out, list) else [out]
    completion = sum(len(o.token_ids) for o in outs)
    log.info("%s %s: %d+%d tokens in %.2f s", kind, model, prompt_tokens, completion, time.perf_counter() - t)
    choices = [_choice(kind, i, str(o), _finish(o)) for i, o in enumerate(outs)]
    return JSONResponse({"id": ident, "object": kind, "created": created, "model": model, "choices": choices,
                         "usage": _usage(prompt_tokens, completion), "system_fingerprint": None})


def _finish(out) -> str:
    return "length" if out.finish == "length" else "stop"


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _choice(kind: str, index: int, text: str, finish: str | None) -> dict:
    if kind == "chat.completion":
        return {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                "logprobs": None}
    return {"index": index, "text": text, "finish_reason": finish, "logprobs": None}


def _delta(kind: str, index: int, text: str | None, finish: str | None, first: bool = False) -> dict:
    if kind == "chat.completion":
        delta = {} if text is None else {"content": text}
        if first:
            delta = {"role": "assistant", "content": text or ""}
        return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
    return {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}


async def _events(ticket: Ticket, body, model: str, kind: str, ident: str, created: int, prompt_tokens: int,
                  write: Callable[..., Any]):
    """Server-sent events in OpenAI's chunk format: the reply's pieces as they are written, a last chunk
    with finish_reason, the usage when stream_options.include_usage, then `data: [DONE]`."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    chunk_kind = "chat.completion.chunk" if kind == "chat.completion" else "text_completion"

    def event(choices: list, usage: dict | None = None) -> str:
        out = {"id": ident, "object": chunk_kind, "created": created, "model": model, "choices": choices,
               "system_fingerprint": None}
        if usage is not None:
            out["usage"] = usage
        return f"data: {json.dumps(out, ensure_ascii=False)}\n\n"

    def work():
        try:
            stream = (lambda piece: loop.call_soon_threadsafe(queue.put_nowait, piece)) if body.n == 1 else None
            return write(stream=stream, cancel=cancel)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.ensure_future(ticket.run(work))
    try:
        if body.n == 1:
            yield event([_delta(kind, 0, "", None, first=True)])
            while (piece := await queue.get()) is not None:
                yield event([_delta(kind, 0, piece, None)])
        out = await task  # raises what the generation raised
        outs = out if isinstance(out, list) else [out]
        for i, o in enumerate(outs):
            if body.n > 1:
                yield event([_delta(kind, i, str(o), None, first=True)])
            yield event([_delta(kind, i, None, _finish(o))])
        if body.stream_options is not None and body.stream_options.include_usage:
            yield event([], _usage(prompt_tokens, sum(len(o.token_ids) for o in outs)))
    except LikemeError as e:  # the status line has gone: the error goes in the stream, as OpenAI does
        yield f"data: {json.dumps(ApiError(400, str(e)).body())}\n\n"
    except Exception as e:
        if isinstance(e, asyncio.CancelledError):
            raise
        log.exception("failed while streaming %s", model)
        yield f"data: {json.dumps(ApiError(500, 'the server failed on this request: its log says why').body())}\n\n"
    finally:
        cancel.set()  # a client that went away: the thread stops after its next token and frees the slot
        if ticket.state == "waiting":
            task.cancel()  # never started: it will not take a slot
        ticket.close()
    yield "data: [DONE]\n\n"


class _EventStream(StreamingResponse):
    """Server-sent events whose generation is cancelled however the response ends (a client that
    disconnects can leave the body iterator suspended, so its own `finally` cannot be relied on)."""

    def __init__(self, events, ticket: Ticket):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.events, self.ticket = events, ticket

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self.events.aclose()  # runs the generator's finally: cancel set, queue place given back
            except RuntimeError:  # still running in a task being cancelled: its own finally runs
                pass
            self.ticket.close()

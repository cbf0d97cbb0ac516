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

Here: the app, its key and size checks, and the routes. Beside it: registry.py loads the runs,
completions.py reads, gates and answers the generation requests, errors.py maps errors to OpenAI's body.
"""
from __future__ import annotations

import base64
import hmac
import json
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from likeme.serve import schemas
from likeme.serve.completions import (
    Gate,
    check_prompt,
    history_of,
    respond,
    response_schema,
    settings_of,
)
from likeme.serve.errors import ApiError, add_handlers
from likeme.serve.limits import Limits
from likeme.serve.registry import Served, load_models

__all__ = ["ApiError", "Served", "create_app", "history_of", "load_models"]

log = logging.getLogger("likeme.serve")
STATIC = Path(__file__).resolve().parent / "static"


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

    add_handlers(app)  # errors: OpenAI's body, never a traceback

    # -- key and body size -------------------------------------------------------------------------
    @app.middleware("http")
    async def _guard(request: Request, call_next):
        if route_path(request.scope).startswith("/v1/"):
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
        settings = settings_of(body, body.max_completion_tokens or body.max_tokens, limits)
        schema = response_schema(body.response_format)
        prompt = voice.prompt_ids(history, max_new_tokens=settings["max_new_tokens"], system=system)
        check_prompt(len(prompt), limits)
        call = dict(json_schema=schema, stop=body.stop_list(), system=system, **settings)
        if log_messages:
            log.info("chat %s <- %s", m.id, json.dumps([x.model_dump(exclude_none=True) for x in body.messages]))
        return await respond(gate, body, m.id, "chat.completion", len(prompt),
                              lambda **kw: voice.reply(history, **call, **kw))

    @app.post("/v1/completions")
    async def completions(body: schemas.CompletionRequest):
        m = model_of(body.model, "voice", "/v1/completions")
        voice = m.obj
        if isinstance(body.prompt, list) and len(body.prompt) != 1:
            raise ApiError(400, "one prompt per request", param="prompt")
        text = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        settings = settings_of(body, body.max_tokens, limits)
        n_prompt = len(voice.tokenizer(text)["input_ids"]) if text else 1
        check_prompt(n_prompt, limits)
        if log_messages:
            log.info("completion %s <- %s", m.id, json.dumps(text))
        return await respond(gate, body, m.id, "text_completion", n_prompt,
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


def route_path(scope) -> str:
    """The path below where the app is mounted: "/v1/models" for /chat/v1/models when `likeme studio`
    mounts this app at /chat (Starlette keeps the full path in scope["path"], the mount in "root_path")."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


# -- the body size of a chunked request -------------------------------------------------------------


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

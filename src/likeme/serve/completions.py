"""What /v1/chat/completions and /v1/completions do beyond their routes (app.py).

The gate (`Gate`, `Ticket`) runs generation in worker threads, at most `Limits.max_concurrent` at a time
with at most `Limits.max_queue` more waiting, and says at once when there is no room (a 429).
`history_of`, `settings_of`, `response_schema` and `check_prompt` read and check a request;
`respond` runs the generation through the gate and answers in OpenAI's shape: one JSON body, or
server-sent events that stop the generation when the client goes away.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from fastapi.responses import JSONResponse
from starlette.responses import StreamingResponse

from likeme.errors import LikemeError
from likeme.serve.errors import ApiError
from likeme.serve.limits import Limits

log = logging.getLogger("likeme.serve")


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


# -- reading a request ------------------------------------------------------------------------------


def history_of(messages, voice) -> tuple[list[tuple[str, str]], str | None]:
    """OpenAI messages -> (the voice's history as (author, text) pairs, the extra system text): `prompts.from_openai`."""
    from likeme.prompts import from_openai

    try:
        return from_openai([(m.role, m.name, m.text()) for m in messages], voice.name, voice.partner)
    except LikemeError as e:
        raise ApiError(400, str(e), param="messages") from None


def settings_of(body, max_tokens: int | None, limits: Limits) -> dict:
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


def response_schema(fmt) -> dict | None:
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


def check_prompt(n: int, limits: Limits) -> None:
    """A prompt over `limits.max_prompt_tokens` tokens is a 400."""
    if n > limits.max_prompt_tokens:
        raise ApiError(400, f"the prompt is {n} tokens; this server allows at most {limits.max_prompt_tokens}",
                       param="messages")


# -- answering ---------------------------------------------------------------------------------------


async def respond(gate: Gate, body, model: str, kind: str, prompt_tokens: int, write: Callable[..., Any]):
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

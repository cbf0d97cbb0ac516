"""The server's errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.

`ApiError` is an error the client can fix (a 4xx, or a 429 when the server is busy); `add_handlers`
maps every exception a route can raise onto that body: a LikemeError is a 400, a malformed request a 400
naming the field, and anything unexpected a 500 that says only to read the server log (never a traceback).
"""
from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from likeme.errors import LikemeError

log = logging.getLogger("likeme.serve")


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


def add_handlers(app) -> None:
    """Register on a FastAPI `app` the handlers that answer every error with OpenAI's body."""

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

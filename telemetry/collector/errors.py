"""The collector's one error shape, built in one place (`error_response`):
``{"error": {"code": "...", "message": "...", "where": "..."}}``, and the handlers that turn every failure of
a request into it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from telemetry.collector.metrics import CollectorMetrics


class ErrorDetail(BaseModel):
    code: str
    message: str
    where: str = ""


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An answer other than success: status, code, message, where (a field path) and extra headers."""

    def __init__(self, status: int, code: str, message: str, where: str = "", headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.where, self.headers = status, code, message, where, headers

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.where, self.headers)


def error_response(status: int, code: str, message: str, where: str = "", headers: dict | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "where": where}}
    return JSONResponse(body, status_code=status, headers=headers)


def internal_error(exc: Exception, metrics: CollectorMetrics) -> JSONResponse:
    """500 for a failure nobody foresaw (counted as ``internal``)."""
    metrics.rejects.labels("internal").inc()
    return error_response(500, "internal", f"{type(exc).__name__}: {exc}")


#: the error answers of the ingest routes, for the OpenAPI document
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d}
    for s, d in {
        400: "Malformed body (bad JSON, a line that does not parse, a cut-off gzip stream, unknown field)",
        401: "Missing or wrong token (answered before the body is read)",
        408: "The body did not arrive within body_timeout_s",
        403: "The token belongs to another node",
        413: "Body larger than max_body_bytes, or more rows than max_batch_rows",
        429: "The node is over its rate budget; retry after Retry-After seconds",
        415: "Unsupported Content-Encoding",
        422: "A value does not fit the schema or the store (the field and sample index, or the line, are named)",
        503: "The store is unavailable, or the collector is out of connections or file descriptors; retry later",
    }.items()
}


def install_error_handlers(app: FastAPI, metrics: CollectorMetrics) -> None:
    """Every error of a FastAPI route answered in the one shape: `ApiError`, pydantic's validation errors
    (400 for bad JSON, 422 naming the field), HTTP errors (404, 405) and anything unexpected (500)."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = [x for x in err.get("loc", ()) if x != "body"]
        where = ""
        for part in loc:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        bad_json = err.get("type") == "json_invalid"
        metrics.rejects.labels("malformed" if bad_json else "invalid").inc()
        return error_response(400 if bad_json else 422, "malformed" if bad_json else "invalid", err["msg"], where)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return internal_error(exc, metrics)

"""The ACS error shape, `{"error": {"code", "message", ...}}`, for every API response.

Domain code raises `ApiError` (or a subclass with fixed status and code); DRF's own
exceptions are translated here too, so no API answers with another shape.
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response


class ApiError(Exception):
    status = 400
    code = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.code = code or self.code
        self.target = target
        self.details = details

    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body (a quota's Retry-After)."""
        return {}


def error_body(
    code: str,
    message: str,
    *,
    target: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    if details:
        error["details"] = details
    return {"error": error}


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def _validation_details(detail: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Flatten DRF's nested validation errors into ACS error details, one per field."""
    if isinstance(detail, dict):
        items: list[dict[str, Any]] = []
        for field, value in detail.items():
            name = field if field != "non_field_errors" else ""
            items += _validation_details(
                value, f"{prefix}.{name}" if prefix and name else prefix or name
            )
        return items
    if isinstance(detail, list):
        items = []
        for index, value in enumerate(detail):
            nested = isinstance(value, (dict, list))
            items += _validation_details(value, f"{prefix}[{index}]" if nested else prefix)
        return items
    entry: dict[str, Any] = {"code": "InvalidValue", "message": str(detail)}
    if prefix:
        entry["target"] = prefix
    return [entry]


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "InvalidJson",
    drf.AuthenticationFailed: "Unauthorized",
    drf.NotAuthenticated: "Unauthorized",
    drf.PermissionDenied: "Forbidden",
    drf.NotFound: "NotFound",
    drf.MethodNotAllowed: "MethodNotAllowed",
    drf.NotAcceptable: "NotAcceptable",
    drf.UnsupportedMediaType: "UnsupportedMediaType",
    drf.Throttled: "TooManyRequests",
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every error leaves in the ACS shape."""
    if isinstance(exc, ApiError):
        body = error_body(exc.code, exc.message, target=exc.target, details=exc.details)
        return Response(body, status=exc.status, headers=exc.headers())
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("RequestEntityTooLarge", "The request body is too large."), status=413
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.ValidationError):
        details = _validation_details(exc.detail)
        first = details[0] if details else {"message": "The request is invalid."}
        message = (
            f"{first['target']}: {first['message']}" if first.get("target") else first["message"]
        )
        return Response(error_body("InvalidRequest", message, details=details), status=400)
    if isinstance(exc, drf.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "BadRequest")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response = Response(error_body(code, str(detail)), status=exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf.Throttled) and wait:
            response["Retry-After"] = str(int(wait))
        return response
    return None


def _wants_json(request: HttpRequest) -> bool:
    # path_info: a resource's own origin routes its API as /r/<slug>/... (accounts.middleware)
    return request.path_info.startswith(("/r/", "/api/", "/.well-known/", "/healthz"))


def refusal_response(request: HttpRequest, error: ApiError) -> Any:
    """`error` raised before any view (apps.core.api.input_edge_middleware): in the ACS shape where
    an API is called, the console's own 400 or 404 page elsewhere."""
    if _wants_json(request):
        body = error_body(error.code, error.message, target=error.target)
        return JsonResponse(body, status=error.status)
    from django.views import defaults

    if error.status == 404:
        return defaults.page_not_found(request, Http404(error.message))
    return defaults.bad_request(request, error)


def handler400(request: HttpRequest, exception: Exception | None = None) -> Any:
    if isinstance(exception, RequestDataTooBig):
        return error_response(413, "RequestEntityTooLarge", "The request body is too large.")
    if _wants_json(request):
        return error_response(400, "BadRequest", "The request could not be understood.")
    from django.views.defaults import bad_request

    return bad_request(request, exception or Exception())


def handler403(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_json(request):
        return error_response(403, "Forbidden", "You do not have access to this resource.")
    from django.views.defaults import permission_denied

    return permission_denied(request, exception or Exception())


def csrf_failure(request: HttpRequest, reason: str = "") -> Any:
    if _wants_json(request):
        return error_response(403, "Forbidden", f"CSRF check failed: {reason}")
    from django.views.csrf import csrf_failure as default_csrf_failure

    return default_csrf_failure(request, reason)


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if _wants_json(request):
        return error_response(404, "NotFound", f"No such path: {request.path}")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


# Seconds a client is told to wait (Retry-After; the ACS SDKs' retry policies honour it)
# when the database cannot be reached.
DATABASE_RETRY_AFTER_SECONDS = 5


def database_unavailable(error: BaseException | None) -> bool:
    """Whether `error` says the database could not serve the request now (a connection
    refused, lost or timed out, a statement cancelled by statement_timeout, a deadlock,
    SQLite's lock held too long): the request may succeed later, unlike a bug."""
    return isinstance(error, (OperationalError, InterfaceError))


def database_unreachable(error: BaseException | None) -> bool:
    """Whether `error` says the database cannot be reached at all: a connection refused, lost
    or timed out, or already closed (psycopg's errors without a server's SQLSTATE), not a
    statement the server refused or cancelled."""
    if isinstance(error, InterfaceError):
        return True
    cause = error.__cause__ if isinstance(error, OperationalError) else None
    return isinstance(cause, psycopg.OperationalError) and cause.sqlstate is None


def handler500(request: HttpRequest) -> Any:
    # Django calls this while it handles the exception, so sys.exc_info() holds it.
    error = sys.exc_info()[1]
    if database_unavailable(error):
        if database_unreachable(error):
            from apps.core import outage  # (it answers with unavailable_response)

            outage.mark_down()
        return unavailable_response(request)
    if _wants_json(request):
        return error_response(500, "InternalError", "The server failed to handle the request.")
    from django.views.defaults import server_error

    return server_error(request)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: the database is down or too slow; the request may be sent again
    (a client retrying a send gives its Repeatability-Request-ID, docs/api.md)."""
    message = "The service cannot reach its database; try again shortly."
    response: HttpResponse
    if _wants_json(request):
        response = error_response(503, "ServiceUnavailable", message)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response

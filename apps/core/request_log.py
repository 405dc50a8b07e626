"""The request log: every ACS and management API request as one structured line (logger
`spool.requests`, JSON) and one RequestLog row, written in batches behind the request, with
the response headers ACS sends: `x-ms-request-id`, `MS-CV`, and the caller's
`x-ms-client-request-id` echoed. Every request, logged or not, is also counted for Prometheus
by route, method and status, with its duration (apps/metrics/exporter.py)."""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apps.core import random_ids, sql
from apps.core.batching import BackgroundWriter
from apps.core.models import RequestLog
from apps.core.parsers import storable
from apps.metrics import exporter

logger = logging.getLogger("spool.requests")


_COLUMNS = [field for field in RequestLog._meta.concrete_fields if not field.primary_key]
# The columns whose values the database takes in a form of its own; the others hold the
# strings and numbers `record` puts in them as they are (the field's conversion of each was
# half the cost of writing a row, profiled).
_CONVERTED = frozenset({"at", "client_address"})


def _write(pending: dict[Hashable, Any]) -> None:
    """Insert the pending rows (field values by name) at once (sql.insert_many), each value
    as the database takes it: bulk_create builds a model and its SQL for each row, three times
    the cost (profiled at 77 us a row, in the web process, at 2,000 tokens/s)."""
    converters = [
        (field.attname, field if field.attname in _CONVERTED else None) for field in _COLUMNS
    ]
    rows = [
        [
            entry[name] if field is None else field.get_db_prep_save(entry[name], connection)
            for name, field in converters
        ]
        for entry in pending.values()
    ]
    with transaction.atomic():
        sql.insert_many(RequestLog, _COLUMNS, rows)


writer = BackgroundWriter(
    "request-log", _write, interval=lambda: settings.REQUEST_LOG_FLUSH_SECONDS
)

_PREFIXES = {"/r/": RequestLog.Kind.ACS, "/api/v1/": RequestLog.Kind.MANAGEMENT}


def _kind(path_info: str) -> str | None:
    for prefix, kind in _PREFIXES.items():
        if path_info.startswith(prefix):
            return kind
    return None


def _correlation_vector() -> str:
    return base64.b64encode(random_ids.token_bytes(16)).decode().rstrip("=") + ".0"


def _route_and_slug(request: HttpRequest, kind: str) -> tuple[str, str]:
    """The matched URL pattern without its mount point, and the resource's slug."""
    match = request.resolver_match
    slug = str(match.kwargs.get("slug", "")) if match else ""
    if kind == RequestLog.Kind.ACS and not slug:  # unrouted: /r/<slug>/<anything>
        slug = request.path_info.split("/")[2]
    route = match.route if match else ""
    for mount in ("r/<slug:slug>/", "api/v1/"):
        route = route.removeprefix(mount)
    return route or exporter.UNROUTED, slug


def _error_of(response: HttpResponse) -> tuple[str, str]:
    """The ACS error a 4xx or 5xx answer carries ({"error": {"code", "message"}})."""
    if response.status_code < 400 or "json" not in response.get("Content-Type", ""):
        return "", ""
    try:
        error = json.loads(response.content).get("error") or {}
        return str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        return "", ""


def caller_of(request: HttpRequest) -> str:
    """Who made the request: a key (`key:primary`), an identity's raw id, or a user name."""
    user = getattr(request, "user", None)
    if user is None:
        return ""
    name = getattr(user, "log_name", None)
    if name:
        return str(name)
    return str(user.get_username()) if getattr(user, "is_authenticated", False) else ""


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        kind = _kind(request.path_info)
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        if kind is None:  # the console, admin, operators' endpoints: counted, not logged
            match = request.resolver_match
            route = match.route if match else ""
            exporter.observe_request(
                "web",
                route or exporter.UNROUTED,
                request.method or "",
                response.status_code,
                seconds,
            )
            return response
        route, slug = _route_and_slug(request, kind)
        error_code, error_message = _error_of(response)
        headers = record(
            kind=kind,
            slug=slug,
            method=request.method or "",
            route=route,
            path=request.path,
            api_version=request.GET.get("api-version", ""),
            status=response.status_code,
            seconds=seconds,
            caller=caller_of(request),
            client_address=_client_address(request),
            error=(error_code, error_message),
            client_request_id=request.headers.get("x-ms-client-request-id", ""),
        )
        for name, value in headers.items():
            response[name] = value
        return response


def record(
    *,
    kind: str,
    slug: str,
    method: str,
    route: str,
    path: str,
    api_version: str,
    status: int,
    seconds: float,
    caller: str,
    client_address: str | None,
    error: tuple[str, str] = ("", ""),
    client_request_id: str = "",
) -> dict[str, str]:
    """Log and count one API request (`route`: the URL pattern without its mount point, never
    the path, so a client sending random paths adds no series); returns the headers its answer
    carries (the request id, the correlation vector, the caller's echoed request id)."""
    request_id = str(random_ids.uuid4())
    client_request_id = client_request_id[:100]
    headers = {"x-ms-request-id": request_id, "MS-CV": _correlation_vector()}
    if client_request_id:
        headers["x-ms-client-request-id"] = client_request_id
    exporter.observe_request(kind, route, method, status, seconds)
    # What the client sent is kept with a NUL made U+FFFD: PostgreSQL refuses a NUL in text,
    # and the batch it came in would be lost with it.
    entry = dict(
        at=timezone.now(),
        kind=kind,
        resource_slug=storable(slug[:63]),
        method=method,
        route=route[:200],
        path=storable(path[:300]),
        api_version=storable(api_version[:32]),
        status=status,
        duration_ms=round(seconds * 1000, 2),
        caller=caller[:200],
        client_address=client_address,
        error_code=error[0][:64],
        error_message=storable(error[1][:300]),
        client_request_id=storable(client_request_id),
        request_id=request_id,
    )
    logger.info(_JsonLine(_line(entry)))
    writer.add(request_id, entry)
    return headers


def _client_address(request: HttpRequest) -> str | None:
    """The peer's address, which the web server took from the trusted load balancer's
    X-Forwarded-For when Spool is behind one (runweb: SPOOL_BEHIND_PROXY)."""
    return ip_address_or_none(request.META.get("REMOTE_ADDR", ""))


@functools.lru_cache(maxsize=4096)  # clients repeat; parsing was 1% of a token request
def ip_address_or_none(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:  # a unix socket, or a test client's placeholder
        return None


def _line(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": entry["at"].isoformat(),
        "kind": entry["kind"],
        "resource": entry["resource_slug"],
        "method": entry["method"],
        "route": entry["route"],
        "path": entry["path"],
        "apiVersion": entry["api_version"],
        "status": entry["status"],
        "ms": entry["duration_ms"],
        "caller": entry["caller"],
        "client": entry["client_address"] or "",
        "error": entry["error_code"],
        "clientRequestId": entry["client_request_id"],
        "requestId": entry["request_id"],
    }


class _JsonLine(dict[str, Any]):
    """A log line's fields: JSON text as the message, and top-level fields of the line under
    SPOOL_LOG_FORMAT=json (python-json-logger merges a dict message into its object)."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=True)

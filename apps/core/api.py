"""Base class for views of the ACS data-plane API (`/r/<slug>/...`), their paging and query
helpers, and the input checks at the edge of every request (`input_edge_middleware`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.dateparse import parse_datetime
from django.utils.decorators import sync_and_async_middleware
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.core import quotas
from apps.core.errors import ApiError, refusal_response
from apps.core.parsers import (
    AcsJSONParser,
    InvalidInput,
    MergePatchJSONParser,
    is_single_line,
    is_storable,
    loads,
)


class AcsApiView(APIView):
    """An ACS operation: checks `api-version` against the versions the view supports, counts
    the request against the operation's quota, if it has one (`quota` names an entry of
    settings.QUOTAS, counted per resource for key callers and per identity for token callers),
    and refuses bad input at the edge (query string, ids in the path, body) before the handler
    runs."""

    api_versions: tuple[str, ...] = ()
    # False for URLs the SDKs use as given, which carry none (recording downloads).
    api_version_required = True
    quota: str = ""
    schema = None  # the ACS API is described by Microsoft's specs, not by /api/schema/
    parser_classes = [AcsJSONParser, MergePatchJSONParser]
    renderer_classes = [JSONRenderer]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        check_query_string(request._request.META.get("QUERY_STRING", ""))
        version = request.query_params.get("api-version")
        if not version and not self.api_version_required:
            version = self.api_versions[-1]
        if not version:
            raise ApiError(
                "The api-version query parameter is required.", code="MissingApiVersionParameter"
            )
        if version not in self.api_versions:
            raise ApiError(
                f"api-version {version!r} is not supported; use one of {', '.join(self.api_versions)}.",
                code="UnsupportedApiVersion",
            )
        if self.quota:
            caller = getattr(request.auth, "identity", None) or request.auth
            quotas.spend(
                self.quota, getattr(caller, "pk", ""), settings.QUOTAS[self.quota], what=self.quota
            )
        check_path_ids(kwargs)
        read_body(request)


def check_query_string(raw: str) -> None:
    """Refuse (400 InvalidRequest naming the parameter) a raw query string whose escapes are not
    UTF-8 or whose names or values hold a control character: no parameter of any API or page
    takes one, and a NUL reaching a PostgreSQL filter is a server error. (Django's own decoding
    replaces bad UTF-8 silently, so the raw string is read.)"""
    if not raw:
        return
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("The query string is not valid UTF-8.") from None
    for name, value in pairs:
        if not is_single_line(name):
            raise InvalidInput("A query parameter's name holds a control character.")
        if not is_single_line(value):
            raise InvalidInput(f"{name} holds a control character.", target=name)


def check_path_ids(kwargs: Mapping[str, Any]) -> None:
    """An id in the path that holds a control character (a NUL above all: PostgreSQL cannot
    compare it) names nothing: 404 NotFound, before any lookup."""
    for name, value in kwargs.items():
        if isinstance(value, str) and not is_single_line(value):
            raise ApiError(
                f"No such {name}: it holds a control character.", status=404, code="NotFound"
            )


def read_body(request: Request) -> None:
    """Read a request's body now, if it has one, so that a body the reader refuses (bad JSON,
    lone surrogates, NULs, deep nesting, huge numbers; see apps.core.parsers) is refused before
    the handler runs, also where the handler never looks at it."""
    if request._request.body:
        request.data  # noqa: B018  (parsing is the point)


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body (no bytes at all) counts as `{}`."""
    if not request.body:
        return {}
    data = request.data
    if not isinstance(data, dict):
        raise ApiError("The request body must be a JSON object.", code="InvalidRequestBody")
    return data


def body_flag(body: dict[str, Any], field: str) -> bool | None:
    """A request body's optional true/false field: None when absent or null. Raises ApiError
    (400 BadRequest) naming the field for anything else."""
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise ApiError(f"{field} must be true or false.", target=field)
    return value


def rfc3339(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def parse_rfc3339(value: Any) -> datetime | None:
    """An aware datetime in UTC from an RFC 3339 string (UTC when it names no zone), or None
    when the value is not one, including well-formed impossible dates such as February 30 and
    instants outside years 1-9999 in UTC. In UTC because RFC 3339 allows offsets up to ±23:59
    and PostgreSQL refuses past ±15:59 (a server error on `+16:00`)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        return None


MAX_PAGE_SIZE = 500
MAX_QUERY_INT = 2**53


def page_of(
    request: Request,
    items: Sequence[Any] | QuerySet[Any],
    key: str,
    *,
    default_size: int = 100,
    size_param: str = "maxPageSize",
) -> dict[str, Any]:
    """One ACS page of `items` (`skip` + `maxPageSize`, or `top`) under `key`, with an absolute
    `nextLink` that keeps the caller's query (the SDK GETs it as given; a relative link would
    be joined to the endpoint's path)."""
    skip = query_int(request, "skip", 0, minimum=0)
    size = min(query_int(request, size_param, default_size, minimum=1), MAX_PAGE_SIZE)
    chunk = list(items[skip : skip + size + 1])  # one more than a page tells if another follows
    body: dict[str, Any] = {key: chunk[:size]}
    if len(chunk) > size:
        query = request.query_params.copy()
        query["skip"] = str(skip + size)
        query[size_param] = str(size)
        body["nextLink"] = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return body


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """The management API's paging (`limit`, `offset`) with bounds no database refuses: at most
    MAX_PAGE_SIZE items, an offset up to MAX_QUERY_INT (DRF's own takes any number and the
    database fails on it: a server error)."""

    max_limit = MAX_PAGE_SIZE

    def get_offset(self, request: Request) -> int:
        offset = int(super().get_offset(request))
        if offset > MAX_QUERY_INT:
            raise ApiError("offset is too large.", code="InvalidRequest", target="offset")
        return offset


def query_int(request: Request, name: str, default: int, *, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"{name} must be an integer.", code="InvalidRequest", target=name) from None
    if value < minimum:
        raise ApiError(f"{name} must be at least {minimum}.", code="InvalidRequest", target=name)
    if value > MAX_QUERY_INT:  # past what the databases store (SQLite raises on 2**63)
        raise ApiError(f"{name} is too large.", code="InvalidRequest", target=name)
    return value


# --- The edge of every other request: paths, query strings, form bodies --------------------------
def check_request_edges(request: HttpRequest, *, multipart: bool = False) -> None:
    """What no view of any kind takes, refused before routing: a path or query string holding a
    control character (or escapes that are not UTF-8); a form field holding a NUL (PostgreSQL
    stores none; text areas keep their line breaks; multipart bodies, uploads, are left to
    their views unread); and, for the management API (/api/), a JSON body the reader refuses
    (`apps.core.parsers.loads`), so that a view that takes no body refuses a bad one too.
    Raises ApiError: 404 for the path, 400 otherwise. `multipart`: check multipart fields too
    (a console page: CSRF's check has read them already)."""
    if not is_single_line(request.path_info):
        raise ApiError("No such path: it holds a control character.", status=404, code="NotFound")
    check_query_string(request.META.get("QUERY_STRING", ""))
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    forms = ("application/x-www-form-urlencoded", "multipart/form-data")
    if request.content_type in (forms if multipart else forms[:1]):
        for name, values in request.POST.lists():
            if not is_storable(name):
                raise InvalidInput("A form field's name holds a NUL character.")
            if not all(is_storable(value) for value in values):
                raise InvalidInput(f"{name} holds a NUL character.", target=name)
    elif request.path_info.startswith("/api/") and request.body:
        loads(request.body)


@sync_and_async_middleware
def input_edge_middleware(get_response: Any) -> Any:
    """`check_request_edges` for every request (place it after ResourceOriginMiddleware, which
    routes a resource's own origin to /r/<slug>/, and after CORS, so browsers can read the
    refusal). A refusal is answered in the ACS shape for the APIs, as a 400/404 page elsewhere."""

    def refused(request: HttpRequest) -> Any:
        try:
            check_request_edges(request)
        except ApiError as error:
            return refusal_response(request, error)
        return None

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> Any:
            return refused(request) or await get_response(request)

        return markcoroutinefunction(middleware)

    def sync_middleware(request: HttpRequest) -> Any:
        return refused(request) or get_response(request)

    return sync_middleware

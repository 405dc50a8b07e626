"""Base class for views of the ACS data-plane API (`/r/<slug>/...`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.core import quotas
from apps.core.errors import ApiError
from apps.core.parsers import AcsJSONParser, MergePatchJSONParser


class AcsApiView(APIView):
    """An ACS operation: checks `api-version` against the versions the view supports, and
    counts the request against the operation's quota, if it has one: `quota` names an entry of
    settings.QUOTAS, counted per resource for key callers and per identity for token callers."""

    api_versions: tuple[str, ...] = ()
    quota: str = ""
    schema = None  # the ACS API is described by Microsoft's specs, not by /api/schema/
    parser_classes = [AcsJSONParser, MergePatchJSONParser]
    renderer_classes = [JSONRenderer]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        version = request.query_params.get("api-version")
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
    """An aware datetime from an RFC 3339 string (UTC when it names no zone), or None when
    the value is not one, including well-formed impossible dates such as February 30."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


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

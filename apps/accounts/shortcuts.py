"""The front of the API shortcuts: what Django's middleware, DRF and the HMAC or Bearer
authentication check before an ACS view runs, done on the ASGI scope for the routes answered
without Django's request machinery (token_route.py, apps/sms/send_route.py,
apps/chat/message_route.py; run by apps/core/wsgi_bridge.py).

`read` returns None whenever Django would answer differently from an ordinary success: a
browser's request (CORS), plain HTTP from afar, a host Django would refuse, another
api-version or parameter, a body that is not a JSON object. The route then returns None and
Django answers with the views' own errors. `respond` logs the request and adds the headers
Django's middleware and DRF put on the view's answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from apps.accounts import auth, origins
from apps.accounts.auth import SignedRequest
from apps.accounts.models import Resource
from apps.core import quotas, request_log, security
from apps.core.errors import error_body
from apps.core.models import RequestLog
from apps.core.parsers import InvalidInput, loads
from apps.core.wsgi_bridge import Answer

# Django's `<slug:slug>` prefix of the console's paths; a resource's own origin has none.
SLUG_PREFIX = r"(?:/r/(?P<slug>[-a-zA-Z0-9_]+))?"


@dataclass(frozen=True)
class ApiRequest:
    """A signed API request that Django would route to the route's view, with a JSON object."""

    signed: SignedRequest
    path: str
    route: re.Match[str]
    secure: bool
    client: str
    lookup: dict[str, Any]  # how the resource is found: {"slug": ...} or {"port": ...}
    fields: dict[str, Any]
    api_version: str
    client_request_id: str
    started: float


def read(
    scope: dict[str, Any], body: bytes, path: re.Pattern[str], api_versions: tuple[str, ...]
) -> ApiRequest | None:
    """The request, when `path` (with SLUG_PREFIX) matches and nothing sets it apart from an
    ordinary request to the view; else None."""
    started = time.perf_counter()
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key in headers:
            return None  # a repeated header: Django joins them (and refuses a joined Host)
        headers[key] = value.decode("latin-1")
    host = headers.get("host", "")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None  # Django refuses it (400)
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if "origin" in headers or media_type != "application/json":
        return None  # CORS headers to add, or a body DRF may not parse
    secure = scope["scheme"] == "https"
    client = (scope.get("client") or ("", 0))[0]
    if not security.api_transport_allowed(secure, client):
        return None  # HttpsOnlyApiMiddleware refuses it
    route = path.fullmatch(scope["path"])
    if route is None:
        return None
    try:
        lookup = origins.resource_lookup_for_host(host)
        if lookup is not None and route["slug"] is not None:
            # /r/<slug>/ on a host that may be a resource's origin (a port of no console, such
            # as a web process's behind a load balancer): the console's, unless one holds it.
            if origins.resource_for_host(host) is not None:
                return None  # Django routes /r/<resource's slug>/r/<slug>/...: 404
            lookup = None
    except origins.UnknownResourceHost:
        return None
    if (lookup is None) == (route["slug"] is None):
        return None  # a resource's origin serves its API at the root, the console's under /r/
    api_version = _api_version(scope.get("query_string", b""), api_versions)
    if api_version is None:
        return None
    try:
        fields = loads(body) if body else {}
    except InvalidInput:
        return None
    if not isinstance(fields, dict):
        return None
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"").decode("latin-1")
    target = raw_path.decode("latin-1") + (f"?{query}" if query else "")
    return ApiRequest(
        signed=SignedRequest(
            method=scope["method"],
            target=target,
            host=host,
            authorization=headers.get("authorization", ""),
            date=headers.get("x-ms-date", ""),
            content_hash=headers.get("x-ms-content-sha256", ""),
            body=body,
        ),
        path=scope["path"],
        route=route,
        secure=secure,
        client=client,
        lookup=lookup or {"slug": route["slug"]},
        fields=fields,
        api_version=api_version,
        client_request_id=headers.get("x-ms-client-request-id", ""),
        started=started,
    )


def _api_version(query_string: bytes, api_versions: tuple[str, ...]) -> str | None:
    """The api-version when it is the query's only parameter and one the API supports."""
    try:
        pairs = parse_qsl(query_string.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    if len(pairs) != 1 or pairs[0][0] != "api-version" or pairs[0][1] not in api_versions:
        return None
    return pairs[0][1]


def access_keys(primary: str, secondary: str) -> list[bytes] | None:
    """A resource's two keys as auth.check_signature takes them; None if either is broken."""
    try:
        return [base64.b64decode(primary), base64.b64decode(secondary)]
    except binascii.Error:
        return None


def addresses(request: ApiRequest, resource: Resource) -> bool:
    """Whether the request is to `resource`'s API (its origin, or /r/<its slug>/)."""
    ((field, value),) = request.lookup.items()
    return bool(getattr(resource, field) == value)


def bearer_token(request: ApiRequest) -> str | None:
    """The user access token the request carries (Authorization: Bearer), if any."""
    return auth.bearer_token(request.signed.authorization)


@dataclass(frozen=True)
class Logged:
    """What the request log says of a request besides the request itself: by whom, with a
    resource's key (`key_name`: primary, secondary) or a user access token (`identity`: its
    identity's raw id)."""

    route: str  # the view's URL pattern, as RequestLogMiddleware names it
    slug: str
    key_name: str = ""
    identity: str = ""

    @property
    def caller(self) -> str:
        return self.identity or f"key:{self.key_name}"


def respond(
    request: ApiRequest,
    logged_as: Logged,
    status: int,
    content: bytes,
    refused: quotas.QuotaExceeded | None = None,
    *,
    allow: str = "POST, OPTIONS",
) -> Answer:
    """The answer, logged as RequestLogMiddleware logs the view's. `allow`: the methods of the
    view's path, as DRF's Allow header names them."""
    logged = request_log.record(
        kind=RequestLog.Kind.ACS,
        slug=logged_as.slug,
        method=request.signed.method,
        route=logged_as.route,
        path=request.path,
        api_version=request.api_version,
        status=status,
        seconds=time.perf_counter() - request.started,
        caller=logged_as.caller,
        client_address=request_log.ip_address_or_none(request.client),
        error=(refused.code, refused.message) if refused else ("", ""),
        client_request_id=request.client_request_id,
    )
    headers = {
        **_API_HEADERS,
        "Allow": allow,
        **(refused.headers() if refused else {}),
        **_security_headers(request.secure),
        **logged,
        "Content-Length": str(len(content)),
    }
    return status, [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()], content


def refuse(
    request: ApiRequest,
    logged_as: Logged,
    refused: quotas.QuotaExceeded,
    *,
    allow: str = "POST, OPTIONS",
) -> Answer:
    """A quota's refusal, in the ACS error shape."""
    content = json.dumps(error_body(refused.code, refused.message)).encode()
    return respond(request, logged_as, refused.status, content, refused, allow=allow)


# What Django's middleware and DRF put on the views' answers (the routes' tests compare them).
_API_HEADERS = {"Content-Type": "application/json", "Vary": "origin"}


def _security_headers(secure: bool) -> dict[str, str]:
    """Django's SecurityMiddleware and XFrameOptionsMiddleware headers, from the same settings."""
    headers = {"X-Frame-Options": settings.X_FRAME_OPTIONS}
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers["X-Content-Type-Options"] = "nosniff"
    if settings.SECURE_REFERRER_POLICY:
        headers["Referrer-Policy"] = settings.SECURE_REFERRER_POLICY
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers["Cross-Origin-Opener-Policy"] = settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers["Strict-Transport-Security"] = hsts
    return headers

"""The token route, `POST [/r/<slug>]/identities/<id>/:issueAccessToken`, answered without
Django's request machinery.

Token issuance is the platform's busiest request (every client app asks for tokens, often),
and Django's middleware, URL resolver and DRF cost several times the work itself: profiled
at 32 clients, the signature, the identity's read, the quota and the signing were a third of
the web process's time. This route does that work alone, on the web tier's worker thread
(apps/core/wsgi_bridge.py), with one query that reads the identity and its resource's keys.

Only an ordinary success is answered here, and a quota's refusal (counted once). Anything
else returns None and Django answers it, with the views' own errors: a browser's request
(CORS), plain HTTP from afar, a host Django would refuse, another api-version or parameter,
a body that is not JSON or asks for something invalid, a bad signature, an unknown identity,
a database error. What a success does is shared with the view: the signature check
(auth.check_signature), the quota (core.quotas), the token (services.issue_checked_token),
the request log (core.request_log.record); tests/accounts/test_token_route.py holds the two
answers side by side.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import DatabaseError, connection
from django.http.request import split_domain_port, validate_host

from apps.accounts import origins, services
from apps.accounts.api.acs_urls import ISSUE_TOKEN_ROUTE
from apps.accounts.api.acs_views import IDENTITY_API_VERSIONS, token_body
from apps.accounts.auth import SignedRequest, Unauthorized, check_signature
from apps.accounts.models import CommunicationIdentity, Resource
from apps.core import quotas, request_log, security
from apps.core.errors import ApiError, error_body
from apps.core.models import RequestLog
from apps.core.parsers import InvalidInput, loads
from apps.core.wsgi_bridge import Answer

# Django's `<slug:slug>`; the raw id is checked below.
PATH = re.compile(
    r"(?:/r/(?P<slug>[-a-zA-Z0-9_]+))?/identities/(?P<raw_id>[^/]+)/:issueAccessToken"
)
RAW_ID_PREFIX = "8:acs:"
QUOTA = "tokens"


def answer(scope: dict[str, Any], body: bytes) -> Answer | None:
    """The answer to a token request, or None to leave the request to Django."""
    if scope["method"] != "POST" or not scope["path"].endswith("/:issueAccessToken"):
        return None
    started = time.perf_counter()
    request = _read(scope, body)
    if request is None:
        return None
    try:
        found = _identity_and_keys(request)
    except DatabaseError:  # Django's path reconnects and answers
        return None
    if found is None:
        return None
    generation, slug, keys = found
    try:
        key_name = check_signature(request.signed, slug, keys)
    except Unauthorized:
        return None
    try:
        quotas.spend(QUOTA, request.resource_id, settings.QUOTAS[QUOTA], what=QUOTA)
    except quotas.QuotaExceeded as refused:
        content = json.dumps(error_body(refused.code, refused.message)).encode()
        return _respond(request, slug, key_name, started, refused.status, content, refused)
    token = services.issue_checked_token(
        request.raw_id,
        request.identity_id,
        request.resource_id,
        generation,
        request.scopes,
        request.minutes,
    )
    content = json.dumps(token_body(token), separators=(",", ":")).encode()
    return _respond(request, slug, key_name, started, 200, content)


@dataclass(frozen=True)
class _TokenRequest:
    """A token request that Django would route to IssueAccessToken and whose body is valid."""

    signed: SignedRequest
    path: str
    secure: bool
    client: str
    lookup: dict[str, Any]  # how the resource is found: {"slug": ...} or {"port": ...}
    raw_id: str
    resource_id: uuid.UUID
    identity_id: uuid.UUID
    scopes: list[str]
    minutes: int
    api_version: str
    client_request_id: str


def _read(scope: dict[str, Any], body: bytes) -> _TokenRequest | None:
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
    path = scope["path"]
    route = PATH.fullmatch(path)
    if route is None:
        return None
    try:
        lookup = origins.resource_lookup_for_host(host)
    except origins.UnknownResourceHost:
        return None
    if (lookup is None) == (route["slug"] is None):
        return None  # a resource's origin serves its API at the root, the console's under /r/
    ids = _parse_raw_id(route["raw_id"])
    api_version = _api_version(scope.get("query_string", b""))
    if ids is None or api_version is None:
        return None
    try:
        fields = loads(body) if body else {}
    except InvalidInput:
        return None
    if not isinstance(fields, dict):
        return None
    try:
        scopes, minutes = services.check_token_request(
            fields.get("scopes"), fields.get("expiresInMinutes")
        )
    except ApiError:
        return None
    raw_path = scope.get("raw_path") or path.encode()
    query = scope.get("query_string", b"").decode("latin-1")
    target = raw_path.decode("latin-1") + (f"?{query}" if query else "")
    return _TokenRequest(
        signed=SignedRequest(
            method="POST",
            target=target,
            host=host,
            authorization=headers.get("authorization", ""),
            date=headers.get("x-ms-date", ""),
            content_hash=headers.get("x-ms-content-sha256", ""),
            body=body,
        ),
        path=path,
        secure=secure,
        client=client,
        lookup=lookup or {"slug": route["slug"]},
        raw_id=route["raw_id"],
        resource_id=ids[0],
        identity_id=ids[1],
        scopes=scopes,
        minutes=minutes,
        api_version=api_version,
        client_request_id=headers.get("x-ms-client-request-id", ""),
    )


def _parse_raw_id(raw_id: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The resource's and the identity's ids in `8:acs:<resource id>_<identity id>`."""
    if not raw_id.startswith(RAW_ID_PREFIX):
        return None
    resource_part, _, identity_part = raw_id[len(RAW_ID_PREFIX) :].partition("_")
    try:
        return uuid.UUID(resource_part), uuid.UUID(identity_part)
    except ValueError:
        return None


def _api_version(query_string: bytes) -> str | None:
    """The api-version when it is the query's only parameter and one the API supports."""
    try:
        pairs = parse_qsl(query_string.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    if len(pairs) != 1 or pairs[0][0] != "api-version" or pairs[0][1] not in IDENTITY_API_VERSIONS:
        return None
    return pairs[0][1]


def _identity_and_keys(request: _TokenRequest) -> tuple[int, str, list[bytes]] | None:
    """The identity's token generation, and its resource's slug and access keys, in one
    query; None when the resource the request addresses has no such identity."""
    ((field, value),) = request.lookup.items()
    uuid_field = CommunicationIdentity._meta.pk
    assert uuid_field is not None
    with connection.cursor() as cursor:
        cursor.execute(
            _identity_query(field),
            [
                uuid_field.get_db_prep_value(request.identity_id, connection),
                uuid_field.get_db_prep_value(request.resource_id, connection),
                value,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    generation, slug, primary, secondary = row
    try:
        keys = [base64.b64decode(primary), base64.b64decode(secondary)]
    except binascii.Error:
        return None
    return generation, slug, keys


@functools.cache
def _identity_query(resource_field: str) -> str:
    """The SQL of the identity's read, built once: building it through the ORM cost as much
    as the rest of the request (profiled). `resource_field`: slug or port."""
    quote = connection.ops.quote_name
    identity, resource = CommunicationIdentity._meta, Resource._meta

    def column(meta: Any, name: str) -> str:
        return quote(meta.get_field(name).column)

    return (
        f"SELECT i.{column(identity, 'token_generation')}, r.{column(resource, 'slug')}, "
        f"r.{column(resource, 'primary_key')}, r.{column(resource, 'secondary_key')} "
        f"FROM {quote(identity.db_table)} i JOIN {quote(resource.db_table)} r "
        f"ON r.{column(resource, 'id')} = i.{column(identity, 'resource')} "
        f"WHERE i.{column(identity, 'id')} = %s AND i.{column(identity, 'resource')} = %s "
        f"AND r.{column(resource, resource_field)} = %s"
    )


def _respond(
    request: _TokenRequest,
    slug: str,
    key_name: str,
    started: float,
    status: int,
    content: bytes,
    refused: quotas.QuotaExceeded | None = None,
) -> Answer:
    logged = request_log.record(
        kind=RequestLog.Kind.ACS,
        slug=slug,
        method="POST",
        route=ISSUE_TOKEN_ROUTE,
        path=request.path,
        api_version=request.api_version,
        status=status,
        seconds=time.perf_counter() - started,
        caller=f"key:{key_name}",
        client_address=request_log.ip_address_or_none(request.client),
        error=(refused.code, refused.message) if refused else ("", ""),
        client_request_id=request.client_request_id,
    )
    headers = {
        **_API_HEADERS,
        **(refused.headers() if refused else {}),
        **_security_headers(request.secure),
        **logged,
        "Content-Length": str(len(content)),
    }
    return status, [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()], content


# What Django's middleware and DRF put on the view's answer (tests compare the two).
_API_HEADERS = {"Content-Type": "application/json", "Allow": "POST, OPTIONS", "Vary": "origin"}


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

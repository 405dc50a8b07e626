"""Authentication of the ACS data-plane API under /r/<slug>/.

Two schemes, as ACS has them: HMAC-SHA256 with a resource access key (admin clients:
Identity, SMS, Rooms, Phone Numbers) and Bearer user access tokens (Chat, calling).
The string-to-sign is documented in shared/acs-api/README.md section 3.2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from apps.accounts import services, signin
from apps.accounts.models import Resource
from apps.core import quotas
from apps.core.errors import ApiError
from apps.core.http import raw_request_target

MAX_CLOCK_SKEW = timedelta(minutes=15)


class Unauthorized(ApiError):
    status = 401
    code = "Unauthorized"


@dataclass(frozen=True)
class KeyPrincipal:
    """A caller holding one of the resource's access keys (`key`: primary or secondary)."""

    resource: Resource
    key: str
    is_authenticated = True

    @property
    def log_name(self) -> str:
        """Who the request log says called (apps/core/request_log.py)."""
        return f"key:{self.key}"


def _requested_slug(request: HttpRequest) -> str:
    """The resource the request addresses: its origin's, or the one in /r/<slug>/."""
    return (request.resolver_match.kwargs.get("slug") if request.resolver_match else None) or ""


def _requested_resource(request: HttpRequest) -> Resource:
    """The resource the request addresses. An unknown one is refused like a wrong key, so that
    callers without a key cannot tell which resources exist."""
    # On a resource's own origin the middleware has loaded it already.
    resource = getattr(request, "origin_resource", None)
    if resource is None:
        resource = Resource.objects.filter(slug=_requested_slug(request)).first()
    if resource is None:
        raise Unauthorized("The request's credentials do not match any resource at this endpoint.")
    return resource


def _signed_date(value: str) -> datetime:
    try:
        signed_at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise Unauthorized("The x-ms-date header is not an RFC 1123 date.") from None
    if signed_at.tzinfo is None:
        raise Unauthorized("The x-ms-date header must be in GMT (RFC 1123).")
    if abs(datetime.now(UTC) - signed_at) > MAX_CLOCK_SKEW:
        raise Unauthorized("The x-ms-date header is more than 15 minutes off the server's clock.")
    return signed_at


def _parse_authorization(value: str) -> tuple[list[str], bytes]:
    scheme, _, params = value.partition(" ")
    if scheme != "HMAC-SHA256":
        raise Unauthorized("The Authorization header must use the HMAC-SHA256 scheme.")
    fields = dict(part.partition("=")[::2] for part in params.strip().split("&"))
    signed_headers = [
        h.strip().lower() for h in fields.get("SignedHeaders", "").split(";") if h.strip()
    ]
    if set(signed_headers) != {"x-ms-date", "host", "x-ms-content-sha256"}:
        raise Unauthorized("SignedHeaders must be x-ms-date;host;x-ms-content-sha256.")
    try:
        signature = base64.b64decode(fields.get("Signature", ""), validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        raise Unauthorized("The signature is not base64.") from None
    if not signature:
        raise Unauthorized("The Authorization header has no signature.")
    return signed_headers, signature


def _form_encoded_query(target: str) -> str:
    """The target with its query re-serialized as the JS SDKs sign it: they rebuild it with
    URLSearchParams (`+` for spaces, everything but `*-._` and alphanumerics escaped)."""
    path, _, query = target.partition("?")
    if not query:
        return target
    pairs = parse_qsl(query, keep_blank_values=True)
    return f"{path}?" + "&".join(
        f"{_form_encode(name)}={_form_encode(value)}" for name, value in pairs
    )


def _form_encode(text: str) -> str:
    return quote_plus(text, safe="*").replace("~", "%7E")


def verify_hmac(request: HttpRequest, resource: Resource) -> str:
    """Check an HMAC-SHA256 signed request against the resource's two keys, and return the
    name of the key that signed it (see check_signature). Raises Unauthorized with a reason."""
    try:
        body = request.body
    except RequestDataTooBig:
        raise ApiError(
            "The request body is too large.", status=413, code="RequestEntityTooLarge"
        ) from None
    return check_signature(
        SignedRequest(
            method=request.method or "",
            target=raw_request_target(request),
            host=request.get_host(),
            authorization=request.headers.get("Authorization", ""),
            date=request.headers.get("x-ms-date", ""),
            content_hash=request.headers.get("x-ms-content-sha256", ""),
            body=body,
        ),
        resource.slug,
        resource.access_keys(),
    )


@dataclass(frozen=True)
class SignedRequest:
    """What an HMAC signature covers, as the request carried it (`target`: the raw path and
    query; `host`: the validated Host header)."""

    method: str
    target: str
    host: str
    authorization: str
    date: str
    content_hash: str
    body: bytes


def check_signature(request: SignedRequest, slug: str, keys: list[bytes]) -> str:
    """The name of the key (primary, secondary) of the resource `slug` that signed `request`.

    Raises Unauthorized with a reason. The signed host is the Host header (a resource's own
    origin), or the Host header plus the resource prefix (`h:8443/r/<slug>`, as the SDKs sign
    an endpoint with a path); the path is the raw request target (Rooms signs it decoded; the
    JS SDKs sign the query re-encoded as a form), and every comparison is constant-time.
    Both keys are tried for each way of signing, so the time taken does not tell which key
    matched; the search stops at the first way that matches, which the signer already knows
    (18 HMACs were a tenth of a token request's CPU, profiled).
    """
    if not request.authorization:
        raise Unauthorized("The request is not signed: the Authorization header is missing.")
    signed_headers, signature = _parse_authorization(request.authorization)
    date, content_hash = request.date, request.content_hash
    if not date or not content_hash:
        raise Unauthorized("The x-ms-date and x-ms-content-sha256 headers are required.")
    _signed_date(date)
    actual_hash = base64.b64encode(hashlib.sha256(request.body).digest()).decode()
    if not hmac.compare_digest(actual_hash.encode(), content_hash.encode()):
        raise Unauthorized("x-ms-content-sha256 does not match the request body.")

    target, host = request.target, request.host
    prefix = f"/r/{slug}"
    hosts = (f"{host}{prefix}", f"{host}{prefix}/", host)
    targets = dict.fromkeys((target, unquote(target), _form_encoded_query(target)))
    for signed_host in hosts:
        for path_and_query in targets:
            values = {"x-ms-date": date, "host": signed_host, "x-ms-content-sha256": content_hash}
            string_to_sign = (
                f"{request.method}\n{path_and_query}\n"
                + ";".join(values[h] for h in signed_headers)
            ).encode()
            matched = ""
            for name, key in zip(("primary", "secondary"), keys, strict=True):
                if hmac.compare_digest(hmac.digest(key, string_to_sign, "sha256"), signature):
                    matched = name
            if matched:
                return matched
    raise Unauthorized("The request signature does not match any access key of this resource.")


class ThrottledBasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic on the management API, refused with 429 and Retry-After while the account
    or the address is paused for failed sign-ins (apps/accounts/signin.py), and for changes
    sent by a browser from another site's page: a browser attaches cached Basic credentials
    to a cross-site form post by itself, which would be CSRF (a script or SDK sends neither
    Origin nor Sec-Fetch-Site)."""

    def authenticate(self, request: Request) -> Any:
        if request.method not in permissions.SAFE_METHODS and _from_another_site(request):
            if authentication.get_authorization_header(request).lower().startswith(b"basic"):
                raise exceptions.PermissionDenied(
                    "HTTP Basic credentials are not accepted for changes sent from another "
                    "site's page; sign in to the console, or call the API from a script."
                )
        return super().authenticate(request)

    def authenticate_credentials(
        self, userid: str, password: str, request: Request | None = None
    ) -> tuple[Any, None]:
        if "\x00" in userid or "\x00" in password:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        try:
            signin.check_sign_in_allowed(userid, request)
        except quotas.QuotaExceeded as refused:
            raise exceptions.Throttled(wait=refused.retry_after, detail=refused.message) from None
        return super().authenticate_credentials(userid, password, request)


def _from_another_site(request: Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site", "")
    if site in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin != f"{request.scheme}://{request.get_host()}"


class HmacAuthentication(authentication.BaseAuthentication):
    """DRF authentication for ACS admin APIs: request.auth is the resource."""

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, Resource]:
        resource = _requested_resource(request._request)
        key = verify_hmac(request._request, resource)
        return KeyPrincipal(resource, key), resource

    def authenticate_header(self, request: Request) -> str:
        return "HMAC-SHA256"


def bearer_token(authorization: str) -> str | None:
    """The user access token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication with a user access token; request.auth is a TokenPrincipal whose
    identity belongs to the resource in the path."""

    def authenticate(
        self, request: Request
    ) -> tuple[services.TokenPrincipal, services.TokenPrincipal] | None:
        token = bearer_token(request.headers.get("Authorization", ""))
        if token is None:
            raise Unauthorized("A user access token (Authorization: Bearer ...) is required.")
        principal = services.authenticate_token(token)
        # The token's identity comes with its resource: no query for the one addressed.
        if principal.identity.resource.slug != _requested_slug(request._request):
            raise Unauthorized("The token belongs to another resource.")
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


def request_resource(request: Request) -> Resource:
    """The resource an HMAC-authenticated request acts on."""
    assert isinstance(request.auth, Resource)
    return request.auth


class IsResourceCaller(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return request.auth is not None

"""Transport security for the web tier: the ACS API only over TLS (or loopback), and browser
protections for the console's pages (cookies Secure on HTTPS, a Content-Security-Policy)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core.errors import error_response

# The console's pages load only their own scripts, styles and images; calls and chat reach
# their WebSockets and resources' origins (other ports of this host, or other hosts), and
# media comes from the camera and microphone.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self' https: wss: ws:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)
# Pages that bring their own inline scripts (drf-spectacular's Swagger UI and ReDoc).
CSP_EXEMPT = ("/api/docs/", "/api/redoc/")


def is_loopback(request: HttpRequest) -> bool:
    return is_loopback_address(request.META.get("REMOTE_ADDR", ""))


@functools.lru_cache(maxsize=4096)  # clients repeat; parsing was 2% of a token request
def is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def plain_http_refused(request: HttpRequest) -> bool:
    """The ACS API over plain HTTP (see api_transport_allowed)."""
    return not api_transport_allowed(request.is_secure(), request.META.get("REMOTE_ADDR", ""))


def api_transport_allowed(secure: bool, client_address: str) -> bool:
    """The ACS API over plain HTTP: keys' signatures and user tokens would cross the network
    in the clear. Allowed from loopback (nothing to sniff; the console's Try pages over
    http://127.0.0.1:8000), or everywhere with SPOOL_ALLOW_HTTP_API."""
    return secure or settings.ALLOW_HTTP_API or is_loopback_address(client_address)


class HttpsOnlyApiMiddleware:
    """Refuses the ACS API over plain HTTP (see plain_http_refused). After the middleware that
    routes a resource's own origin to /r/<slug>/."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/r/") and plain_http_refused(request):
            return error_response(
                403,
                "HttpsRequired",
                "The ACS API is served over HTTPS only: use the https:// endpoint of the "
                "connection string.",
            )
        return self.get_response(request)


class BrowserProtectionMiddleware:
    """Cookies Secure when the page came over HTTPS (the console also answers plain HTTP on
    loopback, where Secure cookies would not come back), and a CSP on HTML pages. Outermost
    but for Django's SecurityMiddleware, so it sees every cookie set inside."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.is_secure():
            for cookie in response.cookies.values():
                cookie["secure"] = True
        if response.get("Content-Type", "").startswith("text/html") and not (
            request.path_info.startswith(CSP_EXEMPT)
        ):
            response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

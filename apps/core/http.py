"""Helpers for reading a request exactly as the client sent it."""

from __future__ import annotations

from django.http import HttpRequest


def raw_request_target(request: HttpRequest) -> str:
    """The path and query as sent on the wire, still percent-encoded.

    ACS SDKs sign the encoded path, while Django's `request.path` is decoded. Servers expose
    the raw form differently: uvicorn (through the WSGI bridge, which builds the environ with a2wsgi) in the ASGI scope, gunicorn as RAW_URI.
    """
    meta = request.META
    scope = meta.get("asgi.scope")
    if scope is not None and scope.get("raw_path"):
        path = scope["raw_path"].decode("latin-1")
    elif meta.get("RAW_URI"):
        return str(meta["RAW_URI"])
    elif meta.get("REQUEST_URI"):
        return str(meta["REQUEST_URI"])
    else:
        path = request.get_full_path().split("?", 1)[0]
    query = meta.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def endpoint_link(request: HttpRequest, path: str) -> str:
    """An absolute URL for `path` (relative to the resource's API) on the endpoint the client
    called: the root of the resource's own origin, or /r/<slug>/ on the console's (SDKs follow
    links as given and sign them for the host they were configured with)."""
    origin_routed = request.path_info != request.path  # see accounts.middleware
    slug = request.resolver_match.kwargs.get("slug", "") if request.resolver_match else ""
    base = "" if origin_routed else f"/r/{slug}"
    return request.build_absolute_uri(f"{base}/{path.lstrip('/')}")

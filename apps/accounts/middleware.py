"""Serves a resource's ACS API at the root of the resource's own origin (origins.py)."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

from apps.accounts import origins
from apps.core.errors import error_response


class ResourceOriginMiddleware:
    """On a resource's origin, `/identities` is routed as `/r/<slug>/identities`, so one URL map
    and one set of views serve both endpoint shapes; the resource is kept on the request
    (`request.origin_resource`) for authentication. Nothing else of the console is reachable
    there. `request.path` keeps what the client sent, so links built from it stay on the
    client's origin."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            resource = origins.resource_for_host(request.get_host())
        except DisallowedHost:
            resource = None  # CommonMiddleware answers it with 400
        except origins.UnknownResourceHost:
            return error_response(
                401,
                "Unauthorized",
                "The request's credentials do not match any resource at this endpoint.",
            )
        request.origin_resource = resource  # type: ignore[attr-defined]
        if resource is not None and not request.path_info.startswith(origins.SHARED_PATHS):
            request.path_info = f"/r/{resource.slug}{request.path_info}"
        return self.get_response(request)

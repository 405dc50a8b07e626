"""Base class for views of the ACS data-plane API (`/r/<slug>/...`)."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.core.errors import ApiError
from apps.core.parsers import AcsJSONParser, MergePatchJSONParser


class AcsApiView(APIView):
    """An ACS operation: checks `api-version` against the versions the view supports."""

    api_versions: tuple[str, ...] = ()
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


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body (no bytes at all) counts as `{}`."""
    if not request.body:
        return {}
    data = request.data
    if not isinstance(data, dict):
        raise ApiError("The request body must be a JSON object.", code="InvalidRequestBody")
    return data


def rfc3339(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")

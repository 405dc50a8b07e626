"""Public, unauthenticated endpoints of the accounts app."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from apps.accounts import tokens


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """The public keys that verify user access tokens (RFC 7517), for other services."""
    response = JsonResponse(tokens.key_store().jwks())
    response["Cache-Control"] = f"public, max-age={tokens.KEY_ACTIVATION_SECONDS}"
    return response

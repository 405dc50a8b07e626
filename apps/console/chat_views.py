"""Console pages for chat: the resource's threads, and Try chat (a live chat between identities
in the browser, through static/chat/spool-chat.js against the resource's own API)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.chat import services as chat
from apps.console.views import _page, _resource_context, resource_page
from apps.core import parsers
from apps.core.errors import ApiError, error_response

# The Try pages' tokens: one feature's scope, the shortest lifetime; a page renews them while it
# is open.
TRY_CHAT_SCOPES = ["chat"]
TRY_TOKEN_MINUTES = accounts.MIN_EXPIRY_MINUTES
IDENTITY_CHOICES = 100


def _context(
    request: HttpRequest, resource: Resource, chat_tab: str, **extra: Any
) -> dict[str, Any]:
    return _resource_context(request, resource, "chat", chat_tab=chat_tab, **extra)


@resource_page()
def chat_threads(request: HttpRequest, resource: Resource) -> HttpResponse:
    context = _context(
        request, resource, "threads", page=_page(request, chat.threads_of_resource(resource))
    )
    return render(request, "console/chat.html", context)


@resource_page()
def chat_try(request: HttpRequest, resource: Resource) -> HttpResponse:
    context = _context(
        request,
        resource,
        "try",
        identities=accounts.list_identities(resource)[:IDENTITY_CHOICES],
        chat_endpoint=f"/r/{resource.slug}/",
        token_url=reverse("console:chat-token", kwargs={"slug": resource.slug}),
        token_minutes=TRY_TOKEN_MINUTES,
    )
    return render(request, "console/chat_try.html", context)


@require_POST
def chat_token(request: HttpRequest, slug: str) -> HttpResponse:
    """Try chat's sign-in and token renewal: a `chat` token (see issue_try_token)."""
    return issue_try_token(request, slug, TRY_CHAT_SCOPES)


def issue_try_token(request: HttpRequest, slug: str, scopes: list[str]) -> HttpResponse:
    """Issue a short token with `scopes` to an identity of the resource, or to a new one: the
    sign-in and token renewal of the console's Try pages (chat, calling). JSON in
    (`{"identity": "<raw id>"}` or `{"create": true}`) and out; the caller view is a POST, which
    Django's middleware checks for the CSRF token; needs a role that manages identities."""
    if not request.user.is_authenticated:
        return error_response(401, "Unauthorized", "Your console session has ended: sign in again.")
    try:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_IDENTITIES)
        body = _json_object(request)
        with transaction.atomic():
            if body.get("create") is True:
                identity, token = accounts.create_identity(
                    resource, scopes=scopes, expires_in_minutes=TRY_TOKEN_MINUTES
                )
                assert token is not None  # scopes were given
            else:
                raw_id = body.get("identity")
                identity = accounts.access_identity(
                    resource, raw_id if isinstance(raw_id, str) else ""
                )
                token = accounts.issue_token(identity, scopes, TRY_TOKEN_MINUTES)
    except ApiError as error:
        return error_response(error.status, error.code, error.message)
    return JsonResponse(
        {
            "identity": identity.raw_id,
            "token": token.token,
            "expiresOn": token.expires_on.isoformat().replace("+00:00", "Z"),
        }
    )


def _json_object(request: HttpRequest) -> dict[str, Any]:
    body = parsers.loads(request.body or b"{}")  # (raises InvalidInput, an ApiError)
    if not isinstance(body, dict):
        raise ApiError(
            'The body must be a JSON object: {"identity": "<raw id>"} or {"create": true}.'
        )
    return body

"""Console pages for chat: the resource's threads, one thread (its participants and messages,
read-only), and Try chat (a live chat between identities in the browser, through
static/chat/spool-chat.js against the resource's own API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.chat import services as chat
from apps.chat.models import ChatMessage, ChatParticipant
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


@dataclass(frozen=True)
class Person:
    """Someone a thread page names: `name` is the display name ("" when none was given),
    `short` the start of the raw id (the page keeps the raw id in a tooltip)."""

    name: str
    raw_id: str
    short: str


@dataclass(frozen=True)
class ParticipantRow:
    participant: ChatParticipant
    raw_id: str
    metadata: list[tuple[str, str]]


@dataclass(frozen=True)
class MessageRow:
    """A message as the thread page shows it. `content` is "" for a deleted message, as the
    ACS API keeps none; `people` are those a participantAdded or participantRemoved names."""

    message: ChatMessage
    sender: Person
    content: str
    people: list[Person]
    metadata: list[tuple[str, str]]


def _short(raw_id: str, resource_id: Any) -> str:
    prefix = f"8:acs:{resource_id}_"
    if raw_id.startswith(prefix):
        return f"{raw_id[len(prefix) :][:8]}…"
    return raw_id


def _pairs(metadata: Any) -> list[tuple[str, str]]:
    # Pairs, not the dict: a template's `metadata.items` would find a key named "items" first.
    return (
        sorted((str(k), str(v)) for k, v in metadata.items()) if isinstance(metadata, dict) else []
    )


def _person(raw_id: str, name: str, resource: Resource) -> Person:
    return Person(name, raw_id, _short(raw_id, resource.pk))


def _people(participants: Any, resource: Resource) -> list[Person]:
    """The participants of a system message, in the API's shape (participant_body)."""
    people = []
    for body in participants if isinstance(participants, list) else []:
        identifier = body.get("communicationIdentifier") if isinstance(body, dict) else None
        raw_id = identifier.get("rawId") if isinstance(identifier, dict) else None
        if isinstance(raw_id, str):
            people.append(_person(raw_id, str(body.get("displayName") or ""), resource))
    return people


def _message_row(message: ChatMessage, names: dict[str, str], resource: Resource) -> MessageRow:
    # A message keeps the name its sender gave; a system message names nobody, so its
    # initiator goes by the name it has in the thread (if it is still there).
    name = message.sender_display_name or names.get(message.sender_raw_id, "")
    return MessageRow(
        message,
        _person(message.sender_raw_id, name, resource),
        "" if message.deleted_at else message.content,
        _people(message.participants, resource),
        _pairs(message.metadata),
    )


def _not_found(request: HttpRequest, error: ApiError) -> HttpResponse:
    return render(request, "console/not_found.html", {"message": error.message}, status=404)


@resource_page()
def chat_threads(request: HttpRequest, resource: Resource) -> HttpResponse:
    topic = request.GET.get("q", "").strip()
    context = _context(
        request,
        resource,
        "threads",
        page=_page(request, chat.find_threads_of_resource(resource, topic=topic)),
        topic=topic,
        pager_query=f"{urlencode({'q': topic})}&" if topic else "",
    )
    return render(request, "console/chat.html", context)


@resource_page()
def chat_thread(request: HttpRequest, resource: Resource, thread_id: str) -> HttpResponse:
    """One thread for operators, read-only: its facts, participants and messages (newest
    first, a page at a time). Any id that is not one of this resource's threads, another
    resource's included, gets the not-found page."""
    try:
        thread = chat.get_resource_thread(resource, thread_id)
    except ApiError as error:
        return _not_found(request, error)
    participants = [
        ParticipantRow(p, p.identity.raw_id, _pairs(p.metadata))
        for p in chat.participants_of_resource_thread(thread)
    ]
    names = {row.raw_id: row.participant.display_name for row in participants}
    page = _page(request, chat.messages_of_resource_thread(thread))
    context = _context(
        request,
        resource,
        "threads",
        thread=thread,
        creator=_person(
            thread.created_by_raw_id, names.get(thread.created_by_raw_id, ""), resource
        ),
        thread_metadata=_pairs(thread.metadata),
        participants=participants,
        page=page,
        rows=[_message_row(message, names, resource) for message in page.object_list],
    )
    return render(request, "console/chat_thread.html", context)


@resource_page()
def chat_try(request: HttpRequest, resource: Resource) -> HttpResponse:
    context = _context(
        request,
        resource,
        "try",
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

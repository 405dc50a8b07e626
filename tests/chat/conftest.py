"""Chat fixtures: users with a token and a Bearer API client, threads, and a snapshot of every
chat table (to prove that a refused request changed nothing)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as accounts
from apps.accounts.models import CommunicationIdentity, Resource
from apps.accounts.services import TokenPrincipal
from apps.chat.models import ChatActivity, ChatMessage, ChatParticipant, ChatThread, ReadReceipt
from apps.events.models import Event

API_VERSION = "2024-03-07"


def ident(raw_id: str) -> dict[str, Any]:
    """A CommunicationIdentifierModel as the SDKs send it."""
    return {"rawId": raw_id, "communicationUser": {"id": raw_id}}


def member(who: ChatUser | str, display_name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ChatParticipant of a request body."""
    raw_id = who if isinstance(who, str) else who.raw_id
    body: dict[str, Any] = {"communicationIdentifier": ident(raw_id), **extra}
    if display_name is not None:
        body["displayName"] = display_name
    return body


def thread_path(thread_id: str, tail: str = "") -> str:
    """`/threads/<id><tail>` with the id percent-encoded, as the SDK sends it."""
    return f"/threads/{quote(thread_id, safe='')}{tail}"


@dataclass
class ChatUser:
    """An identity of a resource, one of its tokens, and an API client that sends it."""

    identity: CommunicationIdentity
    token: str
    principal: TokenPrincipal
    slug: str
    api: APIClient

    @property
    def raw_id(self) -> str:
        return self.identity.raw_id

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        api_version: str | None = API_VERSION,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        raw_body: bytes | None = None,
        slug: str | None = None,
    ) -> Any:
        """`/r/<slug>/chat<path>?api-version=...` with this user's token."""
        params = {"api-version": api_version} if api_version else {}
        params.update(query or {})
        url = f"/r/{slug or self.slug}/chat{path}"
        if params:
            url += "?" + urlencode(params)
        data = raw_body if raw_body is not None else b"" if body is None else json.dumps(body)
        meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}
        return self.api.generic(method, url, data, content_type=content_type, **meta)

    def follow(self, next_link: str) -> Any:
        """GET a `nextLink` exactly as given (it is absolute)."""
        assert next_link.startswith("http://testserver/r/"), next_link
        return self.api.get(next_link)


@pytest.fixture
def chat_user(resource: Resource) -> Callable[..., ChatUser]:
    """`chat_user(scopes=("chat",), on=resource)`: a new identity with a token.
    `chat_user(identity=..., scopes=...)` issues another token to an existing identity."""

    def make(
        scopes: Sequence[str] = ("chat",),
        *,
        on: Resource | None = None,
        identity: CommunicationIdentity | None = None,
    ) -> ChatUser:
        if identity is None:
            identity, issued = accounts.create_identity(on or resource, scopes=list(scopes))
        else:
            issued = accounts.issue_token(identity, list(scopes))
        assert issued is not None
        # What authenticate_token(issued.token) answers, without verifying it again.
        principal = TokenPrincipal(identity=identity, scopes=frozenset(scopes))
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
        return ChatUser(identity, issued.token, principal, identity.resource.slug, api)

    return make


@pytest.fixture
def alice(chat_user: Callable[..., ChatUser]) -> ChatUser:
    return chat_user()


@pytest.fixture
def bob(chat_user: Callable[..., ChatUser]) -> ChatUser:
    return chat_user()


@pytest.fixture
def make_thread() -> Callable[..., str]:
    """`make_thread(creator, *others, topic=...)` through the API; returns the thread id."""

    def make(creator: ChatUser, *others: ChatUser | dict[str, Any], topic: str = "Launch") -> str:
        participants = [o if isinstance(o, dict) else member(o) for o in others]
        response = creator.call("POST", "/threads", {"topic": topic, "participants": participants})
        assert response.status_code == 201, response.content
        return str(response.json()["chatThread"]["id"])

    return make


@pytest.fixture
def send() -> Callable[..., str]:
    """`send(user, thread_id, content, **fields)` through the API; returns the message id."""

    def post(user: ChatUser, thread_id: str, content: str = "Hello", **fields: Any) -> str:
        response = user.call(
            "POST", thread_path(thread_id, "/messages"), {"content": content, **fields}
        )
        assert response.status_code == 201, response.content
        return str(response.json()["id"])

    return post


CHAT_TABLES = (ChatThread, ChatParticipant, ChatMessage, ReadReceipt, ChatActivity, Event)


def chat_state() -> dict[str, list[dict[str, Any]]]:
    """Every row of every chat table (and the event log), to compare before and after."""
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in CHAT_TABLES}


def assert_acs_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` in the ACS error shape; returns the error object."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    if code is not None:
        assert error["code"] == code, body
    return dict(error)

"""Who may call each chat operation: participants, non-participants (403), another resource's
identities (401 on this resource's path, 404 for this resource's thread ids on their own),
revoked tokens (401), tokens without a chat scope (403), and the chat.join and
chat.join.limited scopes. A refused call changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from apps.accounts import services as accounts
from apps.chat import services
from tests.chat.conftest import ChatUser, assert_acs_error, chat_state, ident, member, thread_path

pytestmark = pytest.mark.django_db

MakeUser = Callable[..., ChatUser]


@dataclass
class Scene:
    """A thread of alice and bob (and the caller, when it takes part), with a message of
    alice's and one of the caller's; dave is in the resource but not in the thread."""

    thread_id: str
    alices_message: str
    callers_message: str
    bob: ChatUser
    dave: ChatUser
    caller: ChatUser


def _scene(chat_user: MakeUser, caller: ChatUser, *, caller_joins: bool) -> Scene:
    alice, bob, dave = chat_user(), chat_user(), chat_user()
    others = [member(bob), *([member(caller)] if caller_joins else [])]
    thread, _ = services.create_thread(alice.principal, {"topic": "T", "participants": others})
    alices = services.send_message(alice.principal, thread.pk, {"content": "from alice"})
    callers = alices
    if caller_joins:
        # Sent with a chat token of the caller's identity, whatever the caller's own token.
        sender = chat_user(identity=caller.identity)
        callers = services.send_message(sender.principal, thread.pk, {"content": "mine"})
    return Scene(thread.pk, str(alices.pk), str(callers.pk), bob, dave, caller)


# (name, success status, request for the scene)
Request = tuple[str, str, Any]
ENDPOINTS: dict[str, tuple[int, Callable[[Scene], Request]]] = {
    "create thread": (201, lambda s: ("POST", "/threads", {"topic": "New"})),
    "list threads": (200, lambda s: ("GET", "/threads", None)),
    "get thread": (200, lambda s: ("GET", thread_path(s.thread_id), None)),
    "update topic": (204, lambda s: ("PATCH", thread_path(s.thread_id), {"topic": "Renamed"})),
    "delete thread": (204, lambda s: ("DELETE", thread_path(s.thread_id), None)),
    "send message": (
        201,
        lambda s: ("POST", thread_path(s.thread_id, "/messages"), {"content": "hi"}),
    ),
    "list messages": (200, lambda s: ("GET", thread_path(s.thread_id, "/messages"), None)),
    "get message": (
        200,
        lambda s: ("GET", thread_path(s.thread_id, f"/messages/{s.alices_message}"), None),
    ),
    "edit message": (
        204,
        lambda s: (
            "PATCH",
            thread_path(s.thread_id, f"/messages/{s.callers_message}"),
            {"content": "edited"},
        ),
    ),
    "delete message": (
        204,
        lambda s: ("DELETE", thread_path(s.thread_id, f"/messages/{s.callers_message}"), None),
    ),
    "list participants": (
        200,
        lambda s: ("GET", thread_path(s.thread_id, "/participants"), None),
    ),
    "add participants": (
        201,
        lambda s: (
            "POST",
            thread_path(s.thread_id, "/participants/:add"),
            {"participants": [member(s.dave)]},
        ),
    ),
    "remove a participant": (
        204,
        lambda s: ("POST", thread_path(s.thread_id, "/participants/:remove"), ident(s.bob.raw_id)),
    ),
    "leave": (
        204,
        lambda s: (
            "POST",
            thread_path(s.thread_id, "/participants/:remove"),
            ident(s.caller.raw_id),
        ),
    ),
    "typing": (200, lambda s: ("POST", thread_path(s.thread_id, "/typing"), {})),
    "send read receipt": (
        200,
        lambda s: (
            "POST",
            thread_path(s.thread_id, "/readReceipts"),
            {"chatMessageId": s.alices_message},
        ),
    ),
    "list read receipts": (200, lambda s: ("GET", thread_path(s.thread_id, "/readReceipts"), None)),
}
THREAD_ENDPOINTS = [name for name in ENDPOINTS if name not in ("create thread", "list threads")]

# What chat.join and chat.join.limited may not do (ACS's rules); everything else they may.
FORBIDDEN = {
    "chat": set(),
    "chat.join": {"create thread", "update topic", "delete thread"},
    "chat.join.limited": {
        "create thread",
        "update topic",
        "delete thread",
        "add participants",
        "remove a participant",
    },
}


def _call(caller: ChatUser, scene: Scene, endpoint: str, **options: Any) -> Any:
    method, path, body = ENDPOINTS[endpoint][1](scene)
    return caller.call(method, path, body, **options)


@pytest.mark.parametrize("scope", list(FORBIDDEN))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_participant_may_do_what_its_scope_allows(
    chat_user: MakeUser, endpoint: str, scope: str
) -> None:
    # given a participant whose token has this scope
    caller = chat_user([scope])
    scene = _scene(chat_user, caller, caller_joins=True)
    before = chat_state()

    # when
    response = _call(caller, scene, endpoint)

    # then it succeeds, or is forbidden in the ACS shape and nothing changed
    if endpoint in FORBIDDEN[scope]:
        assert_acs_error(response, 403, "Forbidden")
        assert chat_state() == before
    else:
        assert response.status_code == ENDPOINTS[endpoint][0], response.content


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_token_without_a_chat_scope_is_forbidden_everything(
    chat_user: MakeUser, endpoint: str
) -> None:
    # given a participant whose token only carries voip
    caller = chat_user(["voip"])
    scene = _scene(chat_user, caller, caller_joins=True)
    before = chat_state()

    # when
    response = _call(caller, scene, endpoint)

    # then
    assert "chat" in assert_acs_error(response, 403, "Forbidden")["message"]
    assert chat_state() == before


@pytest.mark.parametrize("endpoint", THREAD_ENDPOINTS)
def test_a_non_participant_is_forbidden_every_thread_operation(
    chat_user: MakeUser, endpoint: str
) -> None:
    # given an identity of the same resource, not in the thread
    caller = chat_user()
    scene = _scene(chat_user, caller, caller_joins=False)
    before = chat_state()

    # when
    response = _call(caller, scene, endpoint)

    # then
    assert_acs_error(response, 403, "Forbidden")
    assert chat_state() == before


def test_a_non_participant_does_not_see_the_thread_in_its_list(chat_user: MakeUser) -> None:
    # given
    caller = chat_user()
    _scene(chat_user, caller, caller_joins=False)

    # when
    response = caller.call("GET", "/threads")

    # then
    assert response.status_code == 200 and response.json()["value"] == []


def _revoked(chat_user: MakeUser, other_resource: Any) -> ChatUser:
    user = chat_user()
    accounts.revoke_tokens(user.identity)
    return user


def _foreign(chat_user: MakeUser, other_resource: Any) -> ChatUser:
    return chat_user(on=other_resource)


def _no_token(chat_user: MakeUser, other_resource: Any) -> ChatUser:
    user = chat_user()
    user.api.credentials()
    return user


def _garbage_token(chat_user: MakeUser, other_resource: Any) -> ChatUser:
    user = chat_user()
    user.api.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    return user


def _hmac_style(chat_user: MakeUser, other_resource: Any) -> ChatUser:
    user = chat_user()
    user.api.credentials(HTTP_AUTHORIZATION="HMAC-SHA256 SignedHeaders=x&Signature=y")
    return user


@pytest.mark.parametrize(
    "make_caller",
    [_revoked, _foreign, _no_token, _garbage_token, _hmac_style],
    ids=[
        "revoked token",
        "another resource's token",
        "no token",
        "garbage token",
        "an access key scheme",
    ],
)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_caller_without_a_valid_token_of_this_resource_is_unauthorized(
    chat_user: MakeUser, other_resource: Any, endpoint: str, make_caller: Any
) -> None:
    # given a thread of this resource, and a caller whose token does not let it in here
    caller = make_caller(chat_user, other_resource)
    scene = _scene(chat_user, caller, caller_joins=caller.slug != other_resource.slug)
    before = chat_state()

    # when it calls this resource's path
    response = _call(caller, scene, endpoint, slug=scene.bob.slug)

    # then
    assert_acs_error(response, 401)
    assert chat_state() == before


@pytest.mark.parametrize("endpoint", THREAD_ENDPOINTS)
def test_another_resources_identity_does_not_find_this_resources_threads(
    chat_user: MakeUser, other_resource: Any, endpoint: str
) -> None:
    # given a thread of this resource, and an identity of another one
    caller = chat_user(on=other_resource)
    scene = _scene(chat_user, caller, caller_joins=False)
    before = chat_state()

    # when it names the thread on its own resource's path
    response = _call(caller, scene, endpoint)

    # then the thread does not exist for it
    assert_acs_error(response, 404, "NotFound")
    assert chat_state() == before

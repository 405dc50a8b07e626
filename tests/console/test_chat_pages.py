"""Console chat pages through Django's test client: the thread list, Try chat, and the endpoint
that issues Try chat's tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts.models import CommunicationIdentity, Resource, Role
from apps.chat import services as chat

pytestmark = pytest.mark.django_db


def signed_in(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def member(resource: Resource, make_user: Any, role: str) -> Client:
    user = make_user(f"{role}-member")
    accounts.add_member(resource, user.username, role)
    return signed_in(user)


def principal_of(resource: Resource) -> accounts.TokenPrincipal:
    _, token = accounts.create_identity(resource, scopes=["chat"])
    assert token is not None
    return accounts.authenticate_token(token.token)


def ask_token(client: Client, resource: Resource, body: Any, **extra: Any) -> Any:
    return client.post(
        f"/resources/{resource.slug}/chat/try/token/",
        json.dumps(body),
        content_type="application/json",
        **extra,
    )


# --- Threads ---------------------------------------------------------------------------------
def test_the_thread_list_shows_counts_and_deleted_threads(owner: Any, resource: Resource) -> None:
    # given a thread of three with two messages, and a deleted thread of one
    alice, bob, carol = (principal_of(resource) for _ in range(3))
    participants = [{"communicationIdentifier": {"rawId": p.raw_id}} for p in (bob, carol)]
    busy, _ = chat.create_thread(alice, {"topic": "Launch plan", "participants": participants})
    chat.send_message(alice, busy.pk, {"content": "hello"})
    chat.send_message(bob, busy.pk, {"content": "hi"})
    gone, _ = chat.create_thread(alice, {"topic": "Old thread"})
    chat.delete_thread(alice, gone.pk)

    # when the owner opens Chat
    page = signed_in(owner).get(f"/resources/{resource.slug}/chat/")

    # then both threads are listed with their counts and state
    assert page.status_code == 200
    threads = {thread.pk: thread for thread in page.context["page"].object_list}
    assert (threads[busy.pk].participant_count, threads[busy.pk].message_count) == (3, 2)
    assert (threads[gone.pk].participant_count, threads[gone.pk].message_count) == (1, 0)
    html = page.content.decode()
    assert "Launch plan" in html and "Old thread" in html and "Deleted" in html
    assert f"/resources/{resource.slug}/chat/try/" in html


def test_the_thread_list_pages(owner: Any, resource: Resource) -> None:
    # given more threads than a page holds
    alice = principal_of(resource)
    for n in range(30):
        chat.create_thread(alice, {"topic": f"Thread {n}"})

    # when
    first = signed_in(owner).get(f"/resources/{resource.slug}/chat/")
    second = signed_in(owner).get(f"/resources/{resource.slug}/chat/?page=2")

    # then
    assert len(first.context["page"].object_list) == 25 and b"Page 1 of 2" in first.content
    assert len(second.context["page"].object_list) == 5


def test_another_resource_s_threads_are_not_listed(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given a thread of another resource
    chat.create_thread(principal_of(other_resource), {"topic": "Fabrikam secrets"})

    # when
    page = signed_in(owner).get(f"/resources/{resource.slug}/chat/")

    # then
    assert b"Fabrikam secrets" not in page.content and b"No chat threads yet" in page.content


@pytest.mark.parametrize("role", [Role.OWNER, Role.CONTRIBUTOR, Role.READER])
def test_every_role_sees_the_chat_pages(resource: Resource, make_user: Any, role: str) -> None:
    # given
    client = member(resource, make_user, role)

    # when
    threads = client.get(f"/resources/{resource.slug}/chat/")
    try_chat = client.get(f"/resources/{resource.slug}/chat/try/")

    # then: readers see the page but no sign-in form
    assert threads.status_code == try_chat.status_code == 200
    assert b'class="active">Chat</a>' in threads.content
    can_chat = role != Role.READER
    assert (b'id="chat-connect"' in try_chat.content) is can_chat
    assert (b'id="chat-not-allowed"' in try_chat.content) is not can_chat
    assert b"chat/spool-chat.js" in try_chat.content


def test_strangers_do_not_find_the_chat_pages(resource: Resource, make_user: Any) -> None:
    client = signed_in(make_user("stranger"))
    assert client.get(f"/resources/{resource.slug}/chat/").status_code == 404
    assert client.get(f"/resources/{resource.slug}/chat/try/").status_code == 404


def test_try_chat_picks_identities_by_searching_the_resource_s(
    owner: Any, resource: Resource
) -> None:
    # given
    identity, _ = accounts.create_identity(resource)

    # when
    page = signed_in(owner).get(f"/resources/{resource.slug}/chat/try/")

    # then the identity field searches this resource's identities (no list of every id)
    html = page.content.decode()
    assert f'data-identity-picker="/resources/{resource.slug}/identities/search/"' in html
    assert identity.raw_id not in html
    assert f'data-endpoint="/r/{resource.slug}/"' in html


# --- Try chat's tokens ------------------------------------------------------------------------
def test_a_contributor_gets_a_chat_token_for_a_new_identity(
    resource: Resource, make_user: Any
) -> None:
    # given
    client = member(resource, make_user, Role.CONTRIBUTOR)

    # when
    response = ask_token(client, resource, {"create": True})

    # then a new identity of the resource and a chat-only token that works
    assert response.status_code == 200
    body = response.json()
    principal = accounts.authenticate_token(body["token"])
    assert principal.raw_id == body["identity"] and principal.scopes == {"chat"}
    assert principal.identity.resource_id == resource.id
    assert body["expiresOn"].endswith("Z")


def test_the_owner_gets_a_token_for_an_existing_identity(owner: Any, resource: Resource) -> None:
    # given
    identity, _ = accounts.create_identity(resource)

    # when
    response = ask_token(signed_in(owner), resource, {"identity": identity.raw_id})

    # then
    assert response.status_code == 200
    assert accounts.authenticate_token(response.json()["token"]).identity == identity
    assert CommunicationIdentity.objects.count() == 1


def test_readers_get_no_token(resource: Resource, make_user: Any) -> None:
    # given a reader and an identity
    identity, _ = accounts.create_identity(resource)
    reader = member(resource, make_user, Role.READER)

    # when
    existing = ask_token(reader, resource, {"identity": identity.raw_id})
    new = ask_token(reader, resource, {"create": True})

    # then
    assert existing.status_code == new.status_code == 403
    assert "token" not in existing.json() and existing.json()["error"]["code"]
    assert CommunicationIdentity.objects.count() == 1
    identity.refresh_from_db()
    assert identity.last_token_issued_at is None


def test_strangers_and_other_resources_identities_are_not_found(
    owner: Any, resource: Resource, other_resource: Resource, make_user: Any
) -> None:
    # given an identity of another resource
    foreign, _ = accounts.create_identity(other_resource)

    # when a stranger asks for a token of this resource, and the owner asks for one of the
    # other resource's identity through this resource
    stranger = ask_token(signed_in(make_user("stranger")), resource, {"create": True})
    cross = ask_token(signed_in(owner), resource, {"identity": foreign.raw_id})

    # then both are 404 and nothing was issued or created
    assert stranger.status_code == cross.status_code == 404
    assert cross.json()["error"]["code"] == "IdentityNotFound"
    foreign.refresh_from_db()
    assert foreign.last_token_issued_at is None
    assert not CommunicationIdentity.objects.filter(resource=resource).exists()


def test_the_token_endpoint_refuses_bad_requests(owner: Any, resource: Resource) -> None:
    client = signed_in(owner)
    assert ask_token(client, resource, ["create"]).status_code == 400
    assert ask_token(client, resource, {"identity": 42}).status_code == 404
    assert client.get(f"/resources/{resource.slug}/chat/try/token/").status_code == 405
    assert Client().post(f"/resources/{resource.slug}/chat/try/token/").status_code == 401


def test_the_token_endpoint_needs_the_csrf_token(owner: Any, resource: Resource) -> None:
    # given a browser that loaded Try chat (and so holds the CSRF cookie)
    client = signed_in(owner, csrf=True)
    page = client.get(f"/resources/{resource.slug}/chat/try/")
    csrf = page.context["csrf_token"]

    # when it posts without, then with, the token the page carries
    without = ask_token(client, resource, {"create": True})
    with_token = ask_token(client, resource, {"create": True}, HTTP_X_CSRFTOKEN=str(csrf))

    # then
    assert without.status_code == 403 and with_token.status_code == 200
    assert CommunicationIdentity.objects.count() == 1

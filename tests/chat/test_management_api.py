"""The chat part of the management API: operators read a resource's threads, participants and
messages; readers may too; strangers and other resources see nothing."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.chat import services

pytestmark = pytest.mark.django_db


def api_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def principal_of(resource: Any, scopes: list[str] | None = None) -> accounts.TokenPrincipal:
    identity, token = accounts.create_identity(resource, scopes=scopes or ["chat"])
    return accounts.authenticate_token(token.token)


def a_thread(resource: Any) -> tuple[str, Any, Any]:
    alice, bob = principal_of(resource), principal_of(resource)
    participants = [{"communicationIdentifier": {"rawId": bob.raw_id}, "displayName": "Bob"}]
    thread, _ = services.create_thread(alice, {"topic": "Ops", "participants": participants})
    services.send_message(alice, thread.pk, {"content": "one"})
    services.send_message(bob, thread.pk, {"content": "two"})
    return thread.pk, alice, bob


def test_an_owner_lists_threads_with_counts_participants_and_messages(
    owner: Any, resource: Any
) -> None:
    # given a thread of two with two messages
    thread_id, alice, bob = a_thread(resource)
    base = f"/api/v1/resources/{resource.slug}/chat/threads/"

    # when the owner reads it through the management API
    listed = api_for(owner).get(base).json()
    detail = api_for(owner).get(f"{base}{thread_id}/").json()
    participants = api_for(owner).get(f"{base}{thread_id}/participants/").json()
    messages = api_for(owner).get(f"{base}{thread_id}/messages/").json()

    # then it sees the counts, who is in, and
    # the messages newest first
    assert listed["count"] == 1 and listed["results"][0]["id"] == thread_id
    assert detail["participant_count"] == 2 and detail["message_count"] == 2
    assert {p["raw_id"]: p["display_name"] for p in participants["results"]} == {
        alice.raw_id: "",
        bob.raw_id: "Bob",
    }
    assert [m["content"] for m in messages["results"]] == ["two", "one"]


def test_readers_read_strangers_and_other_resources_see_nothing(
    resource: Any, other_resource: Any, owner: Any, make_user: Any
) -> None:
    # given a thread in each resource
    thread_id, _, _ = a_thread(resource)
    theirs, _, _ = a_thread(other_resource)
    make_user("reader")
    accounts.add_member(resource, "reader", Role.READER)
    reader, stranger = (
        accounts.list_members(resource).get(user__username="reader").user,
        make_user("stranger"),
    )
    base = f"/api/v1/resources/{resource.slug}/chat/threads/"

    # then a reader reads, a stranger gets 404, and another resource's thread is not found
    assert api_for(reader).get(f"{base}{thread_id}/").status_code == 200
    assert api_for(stranger).get(base).status_code == 404
    assert api_for(owner).get(f"{base}{theirs}/").status_code == 404
    assert api_for(owner).get(f"{base}{theirs}/messages/").status_code == 404
    assert [t["id"] for t in api_for(owner).get(base).json()["results"]] == [thread_id]


def test_a_deleted_message_s_text_is_gone_for_operators_too(owner: Any, resource: Any) -> None:
    # given a thread whose first message its sender deleted
    thread_id, alice, _ = a_thread(resource)
    first = services.list_messages(alice, thread_id).get(content="one")
    services.delete_message(alice, thread_id, str(first.pk))

    # when the owner reads the messages through the management API
    base = f"/api/v1/resources/{resource.slug}/chat/threads/{thread_id}/messages/"
    messages = api_for(owner).get(base).json()["results"]

    # then the deleted one is there, marked deleted, without its text (as in the ACS API)
    deleted = next(m for m in messages if m["id"] == first.pk)
    assert deleted["deleted_at"] and deleted["content"] == ""
    assert [m["content"] for m in messages] == ["two", ""]

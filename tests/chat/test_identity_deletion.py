"""A deleted identity leaves its threads visibly; a deleted resource takes its threads along."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts import services as accounts
from apps.chat import services
from apps.chat.models import ChatActivity, ChatMessage, ChatParticipant, ChatThread

pytestmark = pytest.mark.django_db


def principal_of(resource: Any) -> accounts.TokenPrincipal:
    _, token = accounts.create_identity(resource, scopes=["chat"])
    return accounts.authenticate_token(token.token)


def test_a_deleted_identity_leaves_its_threads_and_the_others_are_told(
    resource: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given alice and bob in a thread, with a message from bob
    alice, bob = principal_of(resource), principal_of(resource)
    body = {"topic": "T", "participants": [{"communicationIdentifier": {"rawId": bob.raw_id}}]}
    thread, _ = services.create_thread(alice, body)
    services.send_message(bob, thread.pk, {"content": "bye"})
    bob_raw_id = bob.raw_id  # the identity object loses its id when deleted

    # when bob's identity is deleted
    with django_capture_on_commit_callbacks(execute=True):
        accounts.delete_identity(bob.identity)

    # then alice is alone, sees a participantRemoved message, and the log has the removal
    assert list(ChatParticipant.objects.values_list("identity_id", flat=True)) == [
        alice.identity.id
    ]
    removed = ChatMessage.objects.get(type="participantRemoved")
    assert removed.participants[0]["communicationIdentifier"]["rawId"] == bob_raw_id
    last = ChatActivity.objects.filter(thread=thread).order_by("-sequence").first()
    assert last is not None and last.event == "participantsRemoved"
    # and what bob wrote stays in the thread
    assert services.list_messages(alice, thread.pk).filter(content="bye").exists()


def test_deleting_a_resource_removes_its_threads_without_announcing_each_identity(
    resource: Any,
) -> None:
    alice, bob = principal_of(resource), principal_of(resource)
    body = {"topic": "T", "participants": [{"communicationIdentifier": {"rawId": bob.raw_id}}]}
    services.create_thread(alice, body)

    accounts.delete_resource(resource)

    assert not ChatThread.objects.exists() and not ChatActivity.objects.exists()

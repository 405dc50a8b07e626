"""Test events carry data of the shape the real events of their type carry: the samples
(apps/events/samples.py) against what chat, calls and Call Automation publish."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.accounts.services import TokenPrincipal
from apps.chat import services as chat
from apps.events import samples, schemas
from apps.events.models import Event

pytestmark = pytest.mark.django_db

P = schemas.PREFIX


def shape(value: Any) -> Any:
    """The keys of a JSON value all the way down (lists by their first item), not the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if isinstance(value, bool) else "scalar"


def sample(event_type: str, resource: Resource) -> dict[str, Any]:
    return samples.sample_data(event_type, resource, timezone.now())


def real_events(resource: Resource) -> dict[str, dict[str, Any]]:
    """The data of the newest stored event of each type."""
    found: dict[str, dict[str, Any]] = {}
    for event in Event.objects.filter(resource=resource).order_by("event_time", "pk"):
        found[event.event_type] = event.data
    return found


def test_every_type_has_a_sample(resource) -> None:
    for event_type in schemas.EVENT_TYPES:
        data = sample(event_type, resource)
        assert data and isinstance(data, dict), event_type


def test_chat_samples_have_the_shape_of_real_chat_events(resource, subscribe) -> None:
    # given a subscription to everything (so the per-user copies are stored too)
    subscribe()
    people = []
    for _ in range(3):
        identity, _token = accounts.create_identity(resource, scopes=["chat"])
        people.append(TokenPrincipal(identity=identity, scopes=frozenset(["chat"])))
    alice, bob, carol = people

    def who(principal: TokenPrincipal) -> dict[str, Any]:
        raw = principal.identity.raw_id
        return {"communicationIdentifier": {"rawId": raw, "communicationUser": {"id": raw}}}

    # when every chat change happens once
    thread, _ = chat.create_thread(alice, {"topic": "Launch", "participants": [who(bob)]})
    message = chat.send_message(alice, thread.pk, {"content": "Hello", "senderDisplayName": "A"})
    chat.edit_message(alice, thread.pk, str(message.pk), {"content": "Hello again"})
    chat.delete_message(alice, thread.pk, str(message.pk))
    chat.update_thread(alice, thread.pk, {"topic": "Liftoff"})
    chat.add_participants(alice, thread.pk, {"participants": [who(carol)]})
    chat.remove_participant(alice, thread.pk, who(carol)["communicationIdentifier"])
    chat.delete_thread(alice, thread.pk)

    # then each chat type was published, with the fields of its sample
    real = real_events(resource)
    chat_types = [t for service, types in schemas.EVENT_GROUPS if service == "Chat" for t in types]
    for event_type in chat_types:
        assert event_type in real, event_type
        assert shape(sample(event_type, resource)) == shape(real[event_type]), event_type


def test_calling_samples_have_the_shape_of_real_call_events(resource) -> None:
    from apps.automation import media_steps
    from apps.automation.models import Recording
    from apps.automation.services.calls import offer_incoming_call
    from apps.calls import signaling
    from apps.calls.models import Call, CallKind, CallParticipant
    from apps.events.services import publish_events

    # given a 1:1 call that connected and ended (rows as the signaling leaves them)
    caller, _ = accounts.create_identity(resource)
    callee, _ = accounts.create_identity(resource)
    now = timezone.now()
    call = Call.objects.create(
        resource=resource,
        kind=CallKind.ONE_TO_ONE,
        caller_raw_id=caller.raw_id,
        created_at=now,
        connected_at=now,
        ended_at=now + timedelta(seconds=42),
        end_code=0,
        end_subcode=0,
        end_reason="The call ended normally.",
    )
    leg = CallParticipant.objects.create(call=call, raw_id=callee.raw_id, state="connected")

    # when its events are built by the calling app, and an IncomingCall is offered
    publish_events(
        resource,
        [
            signaling._started_event(call),
            signaling._added_event(call, leg),
            signaling._removed_event(call, leg),
            signaling._ended_event(call, callee.raw_id),
        ],
    )
    # (a phone calls in: the sample's caller is a phone number too)
    phone_call = Call.objects.create(
        resource=resource, caller_raw_id="4:+15555550100", created_at=now
    )
    offer_incoming_call(phone_call, callee.raw_id)
    # and a recording of the call is finished
    recording = Recording.objects.create(
        id="rec1", resource=resource, call=call, started_at=now, stopped_at=now
    )
    publish_events(resource, [media_steps._file_status_event(recording, "rec1.wav")])

    # then each has the fields of its sample
    real = real_events(resource)
    for name in ("CallStarted", "CallParticipantAdded", "CallParticipantRemoved", "CallEnded"):
        assert shape(sample(P + name, resource)) == shape(real[P + name]), name
    assert shape(sample(P + "IncomingCall", resource)) == shape(real[P + "IncomingCall"])
    recorded = P + "RecordingFileStatusUpdated"
    assert shape(sample(recorded, resource)) == shape(real[recorded])

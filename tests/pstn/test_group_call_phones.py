"""Phones dialed into group calls and rooms (signaling.add_phone / remove_phone): who may, into
which calls, and what the others see. The SIP and media side is in
tests/e2e/test_group_call_phones.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.services import TokenPrincipal
from apps.calls import phones, signaling
from apps.calls.exceptions import CallNotAllowed, CallNotFound, InvalidCallRequest
from apps.calls.models import (
    Call,
    CallKind,
    CallLegState,
    CallParticipant,
    CallState,
    CallTopology,
    Room,
    RoomRole,
)
from apps.numbers.models import Capability, NumberStatus
from apps.pstn.dialing import DialRefused
from apps.pstn.models import SipRoute, SipTrunk

pytestmark = pytest.mark.django_db

PHONE = "4:+15550001111"


@pytest.fixture
def owned(resource: Any, make_numbers: Any) -> Any:
    number, spare = make_numbers(2)
    number.owner, number.status = resource, NumberStatus.OWNED
    number.owned_calling = Capability.BOTH
    number.save()
    number.spare = spare
    return number


@pytest.fixture
def trunk(resource: Any) -> SipTrunk:
    trunk = SipTrunk.objects.create(
        resource=resource, fqdn="sbc.example.com", signaling_port=5060, enabled=True
    )
    SipRoute.objects.create(
        resource=resource, position=0, name="us", number_pattern=r"^\+1\d{10}$", trunks=[trunk.fqdn]
    )
    return trunk


def in_call(
    resource: Any, *, kind: str = CallKind.GROUP, topology: str = CallTopology.SFU, **call: Any
) -> tuple[TokenPrincipal, Call]:
    """An identity connected to a live call of `kind` and `topology`."""
    identity, _ = accounts.create_identity(resource)
    now = timezone.now()
    live = Call.objects.create(
        resource=resource,
        kind=kind,
        topology=topology,
        caller_raw_id=identity.raw_id,
        state=CallState.CONNECTED,
        created_at=now,
        connected_at=now,
        **call,
    )
    CallParticipant.objects.create(
        call=live,
        raw_id=identity.raw_id,
        state=CallLegState.CONNECTED,
        role=RoomRole.ATTENDEE,
        channel_name="socket-1",
        joined_at=now,
    )
    return TokenPrincipal(identity=identity, scopes=frozenset(["voip"])), live


def add(principal: TokenPrincipal, call: Call, caller_id: str, to: str = PHONE) -> Any:
    body = {"participant": {"rawId": to}, "alternateCallerId": {"phoneNumber": caller_id}}
    return signaling.add_phone(principal, str(call.pk), body)


def test_a_participant_dials_a_phone_into_an_sfu_group_call(
    resource: Any, owned: Any, trunk: SipTrunk, settings: Any, monkeypatch: Any
) -> None:
    settings.JANUS_URL = "ws://127.0.0.1:8188"
    dialed: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "apps.calls.signals.phone_dialed.send", lambda sender, **kwargs: dialed.append(kwargs)
    )
    principal, call = in_call(resource)

    leg = add(principal, call, owned.number)

    assert (leg.raw_id, leg.state, leg.sip_trunk) == (PHONE, CallLegState.RINGING, trunk.fqdn)
    assert [(d["caller_id"], d["trunks"]) for d in dialed] == [(owned.number, [trunk.fqdn])]
    # the same phone twice is refused while it rings
    with pytest.raises(InvalidCallRequest):
        add(principal, call, owned.number)

    # when a participant hangs it up while it rings, it stops ringing
    signaling.remove_phone(principal, str(call.pk), {"rawId": PHONE})
    assert CallParticipant.objects.get(pk=leg.pk).state == CallLegState.DECLINED


def test_phones_are_refused_where_they_cannot_join(
    resource: Any, owner: Any, owned: Any, trunk: SipTrunk, settings: Any
) -> None:
    settings.JANUS_URL = "ws://127.0.0.1:8188"
    before = CallParticipant.objects.count()

    # a mesh group call (no SFU to bridge to), and a 1:1 call
    principal, mesh = in_call(resource, topology=CallTopology.MESH)
    with pytest.raises(CallNotAllowed, match="SFU"):
        add(principal, mesh, owned.number)
    principal, one = in_call(resource, kind=CallKind.ONE_TO_ONE, topology=CallTopology.BRIDGE)
    with pytest.raises(CallNotAllowed):
        add(principal, one, owned.number)

    # a room that does not allow dialing out
    room = Room.objects.create(
        resource=resource,
        created_at=timezone.now(),
        valid_from=timezone.now(),
        valid_until=timezone.now() + timedelta(hours=1),
    )
    principal, in_room = in_call(resource, kind=CallKind.ROOM, room=room)
    with pytest.raises(CallNotAllowed, match="pstnDialOutEnabled"):
        add(principal, in_room, owned.number)

    # not a phone, a caller id the resource does not own, no route
    principal, call = in_call(resource)
    with pytest.raises(InvalidCallRequest):
        add(principal, call, owned.number, to="8:acs:someone")
    with pytest.raises(DialRefused):
        add(principal, call, owned.spare.number)
    with pytest.raises(phones.dialing.NoRoute):
        add(principal, call, owned.number, to="4:+445550001111")

    # the media process on another Janus than the SFU's cannot bridge them
    settings.MEDIA_JANUS_URL = "ws://10.0.0.9:8188"
    with pytest.raises(CallNotAllowed, match="SPOOL_MEDIA_JANUS_URL"):
        add(principal, call, owned.number)
    settings.MEDIA_JANUS_URL = ""

    # someone not in the call (another resource's identity) cannot reach it
    other = accounts.create_resource("Fabrikam", owner=owner)
    stranger, _ = in_call(other)
    with pytest.raises(CallNotFound):  # it sees no such call
        add(stranger, call, owned.number)

    assert CallParticipant.objects.count() == before + 5  # only the callers' own legs


def test_a_room_that_allows_dialing_out_takes_phones(
    resource: Any, owned: Any, trunk: SipTrunk, settings: Any, monkeypatch: Any
) -> None:
    settings.JANUS_URL = "ws://127.0.0.1:8188"
    monkeypatch.setattr("apps.calls.signals.phone_dialed.send", lambda sender, **kwargs: None)
    room = Room.objects.create(
        resource=resource,
        created_at=timezone.now(),
        valid_from=timezone.now(),
        valid_until=timezone.now() + timedelta(hours=1),
        pstn_dial_out_enabled=True,
    )
    principal, call = in_call(resource, kind=CallKind.ROOM, room=room)
    assert add(principal, call, owned.number).state == CallLegState.RINGING

"""Rooms (the ACS Rooms API): a call space with a validity window and participants with roles."""

from __future__ import annotations

import secrets
import uuid

from django.db import models

from apps.accounts.models import CommunicationIdentity, Resource


def new_room_id() -> str:
    """An ACS-style room id: 17 decimal digits."""
    return str(10**16 + secrets.randbelow(9 * 10**16))


class Room(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_room_id, editable=False)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="rooms")
    created_at = models.DateTimeField()
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    pstn_dial_out_enabled = models.BooleanField(default=False)
    # The create request's Repeatability-Request-Id: a retry answers with this room.
    repeatability_request_id = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [models.Index(fields=["resource", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "repeatability_request_id"],
                condition=~models.Q(repeatability_request_id=""),
                name="room_repeatability_once",
            )
        ]

    def __str__(self) -> str:
        return self.id


class RoomRole(models.TextChoices):
    PRESENTER = "Presenter"
    ATTENDEE = "Attendee"
    CONSUMER = "Consumer"
    COLLABORATOR = "Collaborator"


class RoomParticipant(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="participants")
    identity = models.ForeignKey(
        CommunicationIdentity, on_delete=models.CASCADE, related_name="room_participations"
    )
    role = models.CharField(max_length=16, choices=RoomRole.choices, default=RoomRole.ATTENDEE)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["room", "identity"], name="one_role_per_room")
        ]

    def __str__(self) -> str:
        return f"{self.identity_id} in {self.room_id} as {self.role}"


class CallState(models.TextChoices):
    RINGING = "ringing", "Ringing"
    CONNECTED = "connected", "Connected"
    DISCONNECTED = "disconnected", "Disconnected"


class CallKind(models.TextChoices):
    ONE_TO_ONE = "oneToOne", "1:1"
    GROUP = "group", "Group"
    ROOM = "room", "Room"


class CallTopology(models.TextChoices):
    PEER_TO_PEER = "p2p", "Peer to peer"
    MESH = "mesh", "Mesh"
    SFU = "sfu", "SFU (Janus)"
    # Every leg's audio meets in the media process's Janus AudioBridge room (Call Automation).
    BRIDGE = "bridge", "Media bridge (Janus AudioBridge)"


class Call(models.Model):
    """One call: 1:1 (an invite that rings) or a group call (by group id or room)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="calls")
    kind = models.CharField(max_length=16, choices=CallKind.choices, default=CallKind.ONE_TO_ONE)
    topology = models.CharField(
        max_length=8, choices=CallTopology.choices, default=CallTopology.PEER_TO_PEER
    )
    # A group call's group id, or its room: at most one live call for each.
    group_id = models.UUIDField(null=True, blank=True)
    room = models.ForeignKey(
        Room, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    # Who started it: the caller of a 1:1 call, the first to join a group call.
    caller_raw_id = models.CharField(max_length=200)
    video = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=CallState.choices, default=CallState.RINGING)
    created_at = models.DateTimeField()
    connected_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # As the ACS calling client reports it: code 0 normal, 487 cancelled, 603 declined.
    end_code = models.PositiveIntegerField(null=True, blank=True)
    end_subcode = models.PositiveIntegerField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True, default="")
    # The Janus server its media is on (its WebSocket API URL), chosen the first time the call
    # needs Janus and kept for its whole life (apps/calls/janus_placement.py); empty: none yet.
    janus_server = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["resource", "-created_at"]),
            # The metrics rollup: calls started, ended and in progress in an interval.
            models.Index(fields=["created_at"], name="call_created_idx"),
            models.Index(fields=["ended_at"], name="call_ended_idx"),
            # Placement counts the live calls on each Janus server; a dead one's are ended.
            models.Index(
                fields=["janus_server"],
                condition=models.Q(ended_at__isnull=True) & ~models.Q(janus_server=""),
                name="call_live_janus_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "group_id"],
                condition=models.Q(ended_at__isnull=True, group_id__isnull=False),
                name="one_live_call_per_group",
            ),
            models.UniqueConstraint(
                fields=["room"],
                condition=models.Q(ended_at__isnull=True, room__isnull=False),
                name="one_live_call_per_room",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def duration_seconds(self) -> float | None:
        if self.connected_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.connected_at).total_seconds()


class CallLegState(models.TextChoices):
    RINGING = "ringing", "Ringing"
    CONNECTED = "connected", "Connected"
    DECLINED = "declined", "Declined"
    LEFT = "left", "Left"


class CallParticipant(models.Model):
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="participants")
    raw_id = models.CharField(max_length=200)
    is_caller = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=CallLegState.choices)
    # The role it joined with (a room's role; Attendee elsewhere): Consumers only receive.
    role = models.CharField(max_length=16, choices=RoomRole.choices, default=RoomRole.ATTENDEE)
    # What the participant's client says of its own media, for everyone's roster.
    is_muted = models.BooleanField(default=False)
    is_on_hold = models.BooleanField(default=False)  # Call Automation hold (apps/automation)
    # A phone leg's trunk (its FQDN) and SIP Call-ID (apps/calls/phones.py).
    sip_trunk = models.CharField(max_length=253, blank=True, default="")
    sip_call_id = models.CharField(max_length=200, blank=True, default="")
    is_video_on = models.BooleanField(default=False)
    # The socket that holds this leg (a Channels channel name), so signals reach one device.
    channel_name = models.CharField(max_length=200, blank=True, default="")
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["call", "raw_id"], name="one_leg_per_participant")
        ]

    def __str__(self) -> str:
        return f"{self.raw_id} in {self.call_id}"

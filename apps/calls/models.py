"""Rooms (the ACS Rooms API): a call space with a validity window and participants with roles."""

from __future__ import annotations

import secrets

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

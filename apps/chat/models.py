"""Chat threads, their participants, messages and read receipts, and the activity log that
lets a reconnecting socket catch up.

Every change to a thread takes the next number of the thread's own sequence
(`ChatThread.last_sequence`, bumped by an UPDATE that holds the thread's row until commit), so
a thread's changes commit in sequence order. Each change is also written to ChatActivity as
the exact realtime event participants receive: a socket that reconnects asks for what follows
the last sequence it saw, and gets it from the database, not from a broker that may have lost it.
"""

from __future__ import annotations

import secrets

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from apps.accounts.models import CommunicationIdentity, Resource


def new_thread_id() -> str:
    """An ACS-style thread id: `19:<32 hex>@thread.v2`."""
    return f"19:{secrets.token_hex(16)}@thread.v2"


class ChatThread(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_thread_id, editable=False)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="chat_threads")
    topic = models.CharField(max_length=256)
    # The raw id stays when the creating identity is deleted (the API still reports it).
    created_by_raw_id = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    last_sequence = models.PositiveBigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # The create request's `repeatability-request-id`: the creator's retry gets this thread.
    repeatability_request_id = models.CharField(max_length=100, blank=True, default="")
    # api-version 2025-03-15: string pairs of the app's own, and the retention policy. A
    # threadCreationDate policy keeps its days, and the time they run out (created_at + days),
    # when beat's apply_retention deletes the thread; None for none (the thread is kept).
    metadata = models.JSONField(default=dict, blank=True)
    retention_days = models.PositiveSmallIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["resource", "-created_at"]),
            models.Index(
                fields=["expires_at"],
                condition=models.Q(expires_at__isnull=False, deleted_at__isnull=True),
                name="chat_thread_expiring",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "created_by_raw_id", "repeatability_request_id"],
                condition=~models.Q(repeatability_request_id=""),
                name="chat_thread_repeatability_once",
            )
        ]

    def __str__(self) -> str:
        return self.topic


class ChatParticipant(models.Model):
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="participants")
    identity = models.ForeignKey(
        CommunicationIdentity, on_delete=models.CASCADE, related_name="chat_participations"
    )
    display_name = models.CharField(max_length=256, blank=True, default="")
    # Messages created before this time are hidden from the participant (None: all shared).
    share_history_time = models.DateTimeField(null=True, blank=True)
    added_at = models.DateTimeField()
    # The thread sequence of the change that added the participant: catch-up starts there.
    added_sequence = models.PositiveBigIntegerField(default=0)
    # api-version 2025-03-15: string pairs of the app's own (1 KB in all).
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "identity"], name="one_participation")
        ]
        indexes = [models.Index(fields=["identity", "thread"])]

    def __str__(self) -> str:
        return f"{self.identity_id} in {self.thread_id}"


class MessageType(models.TextChoices):
    TEXT = "text"
    HTML = "html"
    TOPIC_UPDATED = "topicUpdated"
    PARTICIPANT_ADDED = "participantAdded"
    PARTICIPANT_REMOVED = "participantRemoved"


class ChatMessage(models.Model):
    id = models.BigAutoField(primary_key=True)
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="messages")
    sequence_id = models.PositiveBigIntegerField()
    type = models.CharField(max_length=32, choices=MessageType.choices)
    content = models.TextField(blank=True, default="")
    # System messages: the new topic, or the participants added or removed (API shape).
    topic = models.CharField(max_length=256, blank=True, default="")
    participants = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    sender_raw_id = models.CharField(max_length=200, blank=True, default="")
    sender_display_name = models.CharField(max_length=256, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["thread", "-created_at", "-id"]),
            # The metrics rollup: messages sent in an interval.
            models.Index(fields=["created_at"], name="chat_message_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class ReadReceipt(models.Model):
    """The last message a participant has read in a thread (receipts only move forward)."""

    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="read_receipts")
    reader_raw_id = models.CharField(max_length=200)
    message = models.ForeignKey(ChatMessage, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField()

    class Meta:
        ordering = ["-read_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread", "reader_raw_id"], name="one_receipt_per_reader"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reader_raw_id} read {self.message_id}"


class ChatActivity(models.Model):
    """One realtime event of a thread, as participants receive it (the recipient aside)."""

    id = models.BigAutoField(primary_key=True)
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="activity")
    sequence = models.PositiveBigIntegerField()
    event = models.CharField(max_length=40)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    # Identities that receive it besides the thread's current participants (a removed one).
    also_to = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["thread", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["thread", "sequence"], name="one_activity_per_sequence")
        ]
        indexes = [models.Index(fields=["created_at"])]
        verbose_name_plural = "chat activity"

    def __str__(self) -> str:
        return f"{self.event} #{self.sequence} in {self.thread_id}"

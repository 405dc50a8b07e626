"""Call Automation: an application's connection to a call, its media operations, the
callbacks it is sent and its recordings. Every one is a row with a state, so a restart loses
nothing accepted (docs/automation.md).

The call itself is a `calls.Call` with topology `bridge`: its participants are browser or
agent legs (`calls.CallParticipant`) whose media meets in one Janus AudioBridge room, driven
by the media process (apps/automation/media.py). The application is not a participant.
"""

from __future__ import annotations

import uuid

from django.db import models

from apps.accounts.models import Resource
from apps.calls.models import Call


class ConnectionState(models.TextChoices):
    # The ACS CallConnectionStateModel values.
    CONNECTING = "connecting"
    CONNECTED = "connected"
    TRANSFERRING = "transferring"
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"


class CallConnection(models.Model):
    """The application's leg of a call (`callConnectionId`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="call_connections"
    )
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="connections")
    callback_uri = models.URLField(max_length=2048)
    state = models.CharField(
        max_length=16, choices=ConnectionState.choices, default=ConnectionState.CONNECTING
    )
    # Who the application appears as: the source of a call it placed, answeredBy otherwise.
    source_raw_id = models.CharField(max_length=200)
    source_display_name = models.CharField(max_length=256, blank=True, default="")
    targets = models.JSONField(default=list)  # raw ids the application called
    correlation_id = models.UUIDField(default=uuid.uuid4)
    operation_context = models.CharField(max_length=2048, blank=True, default="")
    continuous_dtmf = models.BooleanField(default=False)
    # Identities the application is ringing into the call (add participant, transfer), by raw
    # id: {"kind": "add"|"transfer", "context": operationContext, "url": operationCallbackUri}.
    invitations = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    connected_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=300, blank=True, default="")
    # The create/answer request's Repeatability-Request-ID: a retry gets this connection.
    repeatability_request_id = models.CharField(max_length=100, blank=True, default="")
    # The next callback's number: callbacks of a connection go out in this order.
    next_callback_seq = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["resource", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "repeatability_request_id"],
                condition=~models.Q(repeatability_request_id=""),
                name="call_connection_repeatability_once",
            )
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def server_call_id(self) -> str:
        return str(self.call_id)


class OperationKind(models.TextChoices):
    PLAY = "play"
    RECOGNIZE = "recognize"
    SEND_DTMF = "sendDtmf"


class OperationState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_OPERATION_STATES = (OperationState.COMPLETED, OperationState.FAILED, OperationState.CANCELED)


class MediaOperation(models.Model):
    """A play, recognize or send-DTMF request: queued by the API, run by the media process in
    the order accepted (one at a time per call, as ACS queues media operations)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(
        CallConnection, on_delete=models.CASCADE, related_name="operations"
    )
    kind = models.CharField(max_length=16, choices=OperationKind.choices)
    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.QUEUED
    )
    request = models.JSONField(default=dict)  # the checked request body
    operation_context = models.CharField(max_length=2048, blank=True, default="")
    callback_uri = models.URLField(max_length=2048, blank=True, default="")
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    result_code = models.PositiveSmallIntegerField(null=True, blank=True)
    result_subcode = models.PositiveIntegerField(null=True, blank=True)
    result_message = models.CharField(max_length=300, blank=True, default="")
    tones = models.JSONField(default=list, blank=True)  # what a recognize collected

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["connection", "state"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class CallbackState(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Callback(models.Model):
    """One mid-call event for the application, POSTed to its callback URI as a CloudEvent,
    in `seq` order per connection, retried as webhooks are (apps/automation/callbacks.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(
        CallConnection, on_delete=models.CASCADE, related_name="callbacks"
    )
    seq = models.PositiveIntegerField()
    event_type = models.CharField(max_length=100)
    url = models.URLField(max_length=2048)
    data = models.JSONField(default=dict)
    state = models.CharField(
        max_length=16, choices=CallbackState.choices, default=CallbackState.PENDING
    )
    created_at = models.DateTimeField()
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["connection", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "seq"], name="one_callback_per_seq")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.seq}"


class RecordingState(models.TextChoices):
    ACTIVE = "active"
    INACTIVE = "inactive"  # paused
    STOPPED = "stopped"


class Recording(models.Model):
    """A recording of a call's mix: segments written by Janus while active, joined into one
    file when stopped (`$SPOOL_DATA_DIR/recordings`)."""

    id = models.CharField(primary_key=True, max_length=64)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="recordings")
    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="recordings")
    connection = models.ForeignKey(
        CallConnection,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="recordings",
    )
    state = models.CharField(
        max_length=16, choices=RecordingState.choices, default=RecordingState.ACTIVE
    )
    state_callback_uri = models.URLField(max_length=2048, blank=True, default="")
    audio_format = models.CharField(max_length=8, default="wav")
    # mixed: one channel, the call's mix. unmixed: one channel per participant, each leg's own
    # audio recorded apart and lined up when the recording stops.
    channel_type = models.CharField(max_length=8, default="mixed")
    # unmixed: who is on which channel, [{"channel": 0-4, "participant": raw id}], pinned or
    # ordered ones from the start, the others added as their audio is first recorded.
    channels = models.JSONField(default=list, blank=True)
    # File names under the recordings folder; unmixed, one entry per active stretch:
    # {"start": µs, "end": µs or None, "tracks": [{"participant", "file"}]} (epoch µs).
    segments = models.JSONField(default=list)
    file_name = models.CharField(max_length=200, blank=True, default="")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["resource", "-started_at"])]

    def __str__(self) -> str:
        return self.id


class StreamingState(models.TextChoices):
    # The ACS MediaStreamingSubscriptionState values a configured subscription takes.
    INACTIVE = "inactive"
    ACTIVE = "active"


class MediaStreaming(models.Model):
    """A connection's media streaming subscription (`mediaStreamingOptions` on answer, create
    or connect): the call's audio to the application's WebSocket, and with `bidirectional` the
    application's audio back into the call. The API sets `wanted`; the media process
    (apps/automation/streaming.py) follows it and sets `state`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.OneToOneField(
        CallConnection, on_delete=models.CASCADE, related_name="media_streaming"
    )
    transport_url = models.CharField(max_length=2048)  # ws(s), checked again when connecting
    audio_channel_type = models.CharField(max_length=8, default="mixed")  # mixed | unmixed
    audio_format = models.CharField(max_length=16, default="pcm16KMono")
    bidirectional = models.BooleanField(default=False)
    wanted = models.BooleanField(default=False)
    state = models.CharField(
        max_length=16, choices=StreamingState.choices, default=StreamingState.INACTIVE
    )
    # The last start/stop request's operationContext and operationCallbackUri: its callbacks.
    operation_context = models.CharField(max_length=2048, blank=True, default="")
    callback_uri = models.URLField(max_length=2048, blank=True, default="")
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=300, blank=True, default="")

    def __str__(self) -> str:
        return f"media streaming {self.id}"

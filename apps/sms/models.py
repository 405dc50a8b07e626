from __future__ import annotations

from django.db import models

from apps.accounts.models import Resource


class Direction(models.TextChoices):
    OUTBOUND = "outbound", "Outbound"
    INBOUND = "inbound", "Inbound"


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"  # claimed by a worker
    SENT = "sent", "Sent"  # the carrier took it; its delivery receipt is awaited
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    RECEIVED = "received", "Received"  # inbound


class SmsMessage(models.Model):
    """One message to or from one number. An outbound row is the job: committed before it is
    queued, claimed by a worker, and re-queued by beat when its claim runs out (killed worker).

    `submit_started_at` is written before a worker hands the message to the carrier; a claim
    that runs out after it was written may already have reached the carrier, so the next
    submission is marked `possible_duplicate`.
    """

    id = models.CharField(primary_key=True, max_length=64)  # ACS style: Outgoing_<time><uuid>
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="sms_messages")
    direction = models.CharField(max_length=8, choices=Direction.choices)
    sender = models.CharField(max_length=16)
    recipient = models.CharField(max_length=16)
    text = models.TextField()
    encoding = models.CharField(max_length=8)
    segments = models.PositiveIntegerField(default=1)
    tag = models.CharField(max_length=256, blank=True)
    delivery_report_requested = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=MessageStatus.choices)
    status_detail = models.CharField(max_length=500, blank=True)
    # The per-recipient answer of the send request (202, or 400 for a refused recipient),
    # replayed to a client that repeats the request.
    send_status_code = models.PositiveSmallIntegerField(default=202)
    repeatability_request_id = models.CharField(max_length=64, blank=True)
    # Job bookkeeping (outbound).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    submit_started_at = models.DateTimeField(null=True, blank=True)
    submissions = models.PositiveIntegerField(default=0)
    possible_duplicate = models.BooleanField(default=False)
    carrier = models.CharField(max_length=64, blank=True)
    carrier_message_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "SMS message"
        indexes = [
            models.Index(fields=["resource", "-created_at"]),
            # A drain's claim: queued messages, oldest first.
            models.Index(
                fields=["created_at"],
                condition=models.Q(status="queued"),
                name="sms_queued_idx",
            ),
            # Beat's sweep: unfinished jobs whose claim ran out.
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status__in=["queued", "sending"]),
                name="sms_unfinished_idx",
            ),
            models.Index(fields=["carrier_message_id"]),
            # The metrics rollup: messages sent, and finished, in an interval.
            models.Index(fields=["created_at"], name="sms_created_idx"),
            models.Index(fields=["finished_at"], name="sms_finished_idx"),
            # The error log: messages whose delivery receipt is overdue.
            models.Index(
                fields=["resource", "submitted_at"],
                condition=models.Q(status="sent"),
                name="sms_awaiting_receipt_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "repeatability_request_id"],
                condition=~models.Q(repeatability_request_id=""),
                name="sms_unique_repeatability_id",
            )
        ]

    def __str__(self) -> str:
        return self.id


class EarlyReceipt(models.Model):
    """A delivery receipt that arrived before the worker recorded the carrier's id for the
    message (an SMSC may send both at once); applied when the id is recorded."""

    carrier_message_id = models.CharField(max_length=100, unique=True)
    delivered = models.BooleanField()
    detail = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["received_at"])]  # beat's sweep: the old ones

    def __str__(self) -> str:
        return f"receipt for {self.carrier_message_id}"


class SenderPace(models.Model):
    """When a sender number may next hand a segment to the carrier, and its own send rate
    when the operator set one (a short code, a number the carrier allows more)."""

    number = models.CharField(max_length=16, unique=True)
    next_slot_at = models.DateTimeField()
    segments_per_second = models.FloatField(
        null=True,
        blank=True,
        help_text="Empty: the deployment's rate for the number's type "
        "(SPOOL_SMS_SEGMENTS_PER_SECOND, SPOOL_SMS_TOLL_FREE_SEGMENTS_PER_SECOND).",
    )

    def __str__(self) -> str:
        return f"{self.number} next at {self.next_slot_at}"


class OptOut(models.Model):
    """A person who replied STOP to one of a resource's numbers (or was added through the
    API): messages from that number to them fail until they reply START."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="sms_opt_outs")
    sender = models.CharField(max_length=16)  # the resource's number
    recipient = models.CharField(max_length=16)
    source = models.CharField(max_length=16, default="keyword")  # keyword | api | console
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "opt-out"
        constraints = [
            models.UniqueConstraint(fields=["sender", "recipient"], name="sms_unique_opt_out")
        ]

    def __str__(self) -> str:
        return f"{self.recipient} opted out of {self.sender}"


class HandsetMessage(models.Model):
    """A message in a virtual handset's inbox or outbox: a phone outside this deployment,
    played by a person in the console (loopback carrier)."""

    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="handset_messages"
    )
    handset = models.CharField(max_length=16)
    counterpart = models.CharField(max_length=16)  # the resource's number
    to_handset = models.BooleanField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["resource", "handset", "created_at"])]

    def __str__(self) -> str:
        arrow = "to" if self.to_handset else "from"
        return f"{arrow} handset {self.handset}"

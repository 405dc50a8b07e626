from __future__ import annotations

import uuid

from django.db import models

from apps.accounts.models import Resource


class NumberType(models.TextChoices):
    GEOGRAPHIC = "geographic", "Geographic"
    TOLL_FREE = "tollFree", "Toll-free"
    MOBILE = "mobile", "Mobile"


class Capability(models.TextChoices):
    NONE = "none", "None"
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"
    BOTH = "inbound+outbound", "Inbound and outbound"


class NumberStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    HELD = "held", "Held by a search"
    OWNED = "owned", "Owned by a resource"
    QUARANTINED = "quarantined", "Released, in quarantine"


class AssignmentType(models.TextChoices):
    PERSON = "person", "Person"
    APPLICATION = "application", "Application"


class SearchState(models.TextChoices):
    HELD = "held", "Holding its numbers"
    PURCHASING = "purchasing", "Being purchased"
    PURCHASED = "purchased", "Purchased"
    EXPIRED = "expired", "Expired"


class NumberSearch(models.Model):
    """A hold on numbers until it is purchased or expires: a search (ACS: 16 min; the request
    below) or a reservation (numbers picked one by one, per-number requests on the numbers;
    the client names its id)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="number_searches")
    is_reservation = models.BooleanField(default=False)
    country_code = models.CharField(max_length=2, blank=True)
    number_type = models.CharField(max_length=16, choices=NumberType.choices, blank=True)
    assignment_type = models.CharField(max_length=16, choices=AssignmentType.choices, blank=True)
    calling = models.CharField(max_length=16, choices=Capability.choices, blank=True)
    sms = models.CharField(max_length=16, choices=Capability.choices, blank=True)
    area_code = models.CharField(max_length=8, blank=True)
    quantity = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=SearchState.choices, default=SearchState.HELD)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "number searches"
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"search {self.id}"


class PhoneNumber(models.Model):
    """One number of the operator's inventory, from import or seeding to sale and release.

    `calling` / `sms` are what the carrier supports for it: the most a buyer can ask for.
    """

    number = models.CharField(max_length=16, unique=True, help_text="E.164, e.g. +14255550123")
    country_code = models.CharField(max_length=2)
    number_type = models.CharField(max_length=16, choices=NumberType.choices)
    locality = models.CharField(max_length=100, blank=True)
    administrative_division = models.CharField(max_length=100, blank=True)
    area_code = models.CharField(max_length=8, blank=True)
    assignable_to_person = models.BooleanField(default=True)
    assignable_to_application = models.BooleanField(default=True)
    calling = models.CharField(max_length=16, choices=Capability.choices, default=Capability.BOTH)
    sms = models.CharField(max_length=16, choices=Capability.choices, default=Capability.BOTH)
    monthly_cost = models.DecimalField(max_digits=10, decimal_places=2)
    setup_cost = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    currency = models.CharField(max_length=3)
    carrier = models.CharField(max_length=64, default="loopback")
    status = models.CharField(
        max_length=16, choices=NumberStatus.choices, default=NumberStatus.AVAILABLE
    )
    owner = models.ForeignKey(
        Resource, null=True, blank=True, on_delete=models.SET_NULL, related_name="phone_numbers"
    )
    held_by = models.ForeignKey(
        NumberSearch, null=True, blank=True, on_delete=models.SET_NULL, related_name="numbers"
    )
    # While held or owned: the assignment and capabilities the holder asked for.
    owned_assignment_type = models.CharField(
        max_length=16, choices=AssignmentType.choices, blank=True
    )
    owned_calling = models.CharField(max_length=16, choices=Capability.choices, blank=True)
    owned_sms = models.CharField(max_length=16, choices=Capability.choices, blank=True)
    purchased_at = models.DateTimeField(null=True, blank=True)
    # Where inbound calls and messages go (later issues route by it): an identity of the
    # owner (8:acs:...) or an http(s) webhook URL; empty = events only.
    inbound_destination = models.CharField(max_length=2048, blank=True)
    quarantined_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        indexes = [
            # Browsing: distinct area codes and localities of a country's available numbers.
            models.Index(fields=["country_code", "number_type", "status", "area_code"]),
            # Searching: the available numbers of an area code, already in number order, so
            # `ORDER BY number LIMIT n` stops at the first matches (bench/phone_numbers.py: p99 631 ms
            # on 1M numbers without it, 40 ms with it).
            models.Index(
                fields=["country_code", "number_type", "area_code", "number"],
                condition=models.Q(status="available"),
                name="numbers_available_search_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class OperationKind(models.TextChoices):
    SEARCH = "search", "Search"
    PURCHASE = "purchase", "Purchase"
    RELEASE = "releasePhoneNumber", "Release"
    UPDATE_CAPABILITIES = "updatePhoneNumberCapabilities", "Update capabilities"
    RESERVATION_PURCHASE = "reservationPurchase", "Reservation purchase"


class OperationStatus(models.TextChoices):
    NOT_STARTED = "notStarted", "Not started"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class NumberOperation(models.Model):
    """An ACS long-running operation. The row is the job: a worker advances it, and beat
    re-queues one left unfinished past its lease (a lost message or a killed worker)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.ForeignKey(
        Resource, on_delete=models.CASCADE, related_name="number_operations"
    )
    kind = models.CharField(max_length=32, choices=OperationKind.choices)
    status = models.CharField(
        max_length=16, choices=OperationStatus.choices, default=OperationStatus.NOT_STARTED
    )
    search = models.ForeignKey(NumberSearch, null=True, blank=True, on_delete=models.SET_NULL)
    phone_number = models.ForeignKey(PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL)
    requested = models.JSONField(default=dict, blank=True)
    resource_location = models.CharField(max_length=200, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_action_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "last_action_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

from __future__ import annotations

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
    status = models.CharField(max_length=16, choices=NumberStatus.choices, default=NumberStatus.AVAILABLE)
    owner = models.ForeignKey(
        Resource, null=True, blank=True, on_delete=models.SET_NULL, related_name="phone_numbers"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        indexes = [
            # Searches filter available numbers by country, type and area code.
            models.Index(fields=["country_code", "number_type", "status", "area_code"]),
        ]

    def __str__(self) -> str:
        return self.number

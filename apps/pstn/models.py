"""SIP trunks and routes of a resource: the ACS SIP routing (direct routing) configuration.

What an ACS SDK sees and sets (`GET`/`PATCH /sip`) is a trunk's FQDN and signaling port and
the ordered routes. Everything else on a trunk is the operator's: whether it carries calls,
where and how Spool reaches it, who may call in through it and what it may dial."""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.accounts.models import Resource
from apps.core import sealed

PASSWORD_PURPOSE = "spool.pstn.trunk-password"  # the key sealing trunks' digest passwords


class Transport(models.TextChoices):
    UDP = "udp", "UDP"
    TCP = "tcp", "TCP"
    TLS = "tls", "TLS"


class CallerIdFormat(models.TextChoices):
    E164 = "e164", "E.164 with + (+14255550100)"
    DIGITS = "digits", "Digits without + (14255550100)"


class Codec(models.TextChoices):
    PCMU = "pcmu", "G.711 µ-law (PCMU)"
    PCMA = "pcma", "G.711 A-law (PCMA)"


def default_codecs() -> list[str]:
    return [Codec.PCMU.value, Codec.PCMA.value]


def empty_list() -> list[Any]:
    return []


class SipTrunk(models.Model):
    """One SIP trunk (a carrier's or a customer's session border controller) of a resource,
    keyed by its FQDN as ACS keys it (lowercase). Changed through `apps.pstn.services` only."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="sip_trunks")
    fqdn = models.CharField(max_length=249)
    signaling_port = models.PositiveIntegerField()
    # --- The operator's: never in the ACS API ------------------------------------------------
    # A trunk a tenant adds through the API carries no call until an operator enables it (ACS
    # needs the trunk's domain verified first; Spool needs an operator to look at it).
    enabled = models.BooleanField(default=False)
    # Where SIP goes (a host name or an IP address); blank: the FQDN.
    address = models.CharField(max_length=253, blank=True)
    transport = models.CharField(max_length=3, choices=Transport.choices, default=Transport.UDP)
    digest_username = models.CharField(max_length=128, blank=True)
    # Answering a digest challenge needs the password in the clear, so it is sealed (encrypted
    # under a key derived from SECRET_KEY: apps/core/sealed.py), not hashed; read and set it
    # through `digest_password`. Never shown again once set (admin, console).
    sealed_digest_password = models.TextField(blank=True)
    # CIDR networks calls in through this trunk may come from; empty: none are accepted.
    allowed_networks = models.JSONField(default=empty_list, blank=True)
    codecs = models.JSONField(default=default_codecs)
    # Calls out through this trunk encrypt their audio (SRTP, keys by SDES in the SDP: TLS only).
    srtp = models.BooleanField(default=False)
    # How calls out present their caller id (the From user part), and whether they assert it
    # (P-Asserted-Identity), as carriers variously require.
    caller_id_format = models.CharField(
        max_length=8, choices=CallerIdFormat.choices, default=CallerIdFormat.E164
    )
    assert_identity = models.BooleanField(default=False)
    # Calls at once through this trunk, both ways; null: no limit.
    max_concurrent_calls = models.PositiveIntegerField(null=True, blank=True)
    # E.164 prefixes outbound calls may dial ("+1", "+4420"); empty: any (a toll-fraud guard).
    outbound_prefixes = models.JSONField(default=empty_list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SIP trunk"
        ordering = ["resource_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["resource", "fqdn"], name="pstn_trunk_fqdn_unique")
        ]

    def __str__(self) -> str:
        return f"{self.fqdn}:{self.signaling_port}"

    @property
    def digest_password(self) -> str:
        return sealed.unseal(PASSWORD_PURPOSE, self.sealed_digest_password)

    @digest_password.setter
    def digest_password(self, password: str) -> None:
        self.sealed_digest_password = sealed.seal(PASSWORD_PURPOSE, password)

    @property
    def target_host(self) -> str:
        """Where SIP for this trunk is sent: the operator's address, else the FQDN."""
        return self.address or self.fqdn

    def allows_destination(self, number: str) -> bool:
        """True when an outbound call to `number` (E.164) may use this trunk."""
        prefixes = self.outbound_prefixes or []
        return not prefixes or any(number.startswith(prefix) for prefix in prefixes)


class SipRoute(models.Model):
    """One voice route of a resource: calls to numbers matching `number_pattern` go out through
    `trunks` (FQDNs, in order). Routes apply in `position` order; the first match wins."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="sip_routes")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=256)
    description = models.CharField(max_length=1024, blank=True)
    number_pattern = models.CharField(max_length=1024)
    trunks = models.JSONField(default=empty_list, blank=True)

    class Meta:
        verbose_name = "SIP route"
        ordering = ["resource_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "position"], name="pstn_route_position_unique"
            ),
            models.UniqueConstraint(fields=["resource", "name"], name="pstn_route_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name}"

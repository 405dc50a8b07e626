from __future__ import annotations

import base64
import secrets
import uuid

from django.conf import settings
from django.db import models


def new_access_key() -> str:
    """An ACS-style access key: base64 of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


class Resource(models.Model):
    """A tenant's communication resource: an endpoint with two access keys (like ACS)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Fixed at creation: it is part of the endpoint every client has configured.
    slug = models.SlugField(max_length=63, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    # The HTTPS port of the resource's own origin when no resource domain is configured
    # (apps/accounts/origins.py). Fixed at creation, like the slug.
    port = models.PositiveIntegerField(null=True, blank=True, unique=True, editable=False)
    primary_key = models.CharField(max_length=64, default=new_access_key)
    secondary_key = models.CharField(max_length=64, default=new_access_key)
    created_at = models.DateTimeField(auto_now_add=True)
    primary_key_rotated_at = models.DateTimeField(null=True, blank=True)
    secondary_key_rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def access_keys(self) -> list[bytes]:
        return [base64.b64decode(self.primary_key), base64.b64decode(self.secondary_key)]


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    CONTRIBUTOR = "contributor", "Contributor"
    READER = "reader", "Reader"


class Membership(models.Model):
    """A portal user's role on one resource."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["resource", "user"], name="one_role_per_user")
        ]
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.resource}"


class IncomingCalls(models.TextChoices):
    CLIENT = "client", "Ring the identity's calling clients"
    APPLICATION = "application", "Raise IncomingCall for the resource's application"
    # The console's "Try IVR": Spool's own small IVR answers (apps/automation/ivr.py).
    BUILT_IN_IVR = "ivr", "Answer with the built-in IVR (Try IVR)"


IDENTITY_LABEL_MAX_LENGTH = 64


class CommunicationIdentity(models.Model):
    """An ACS communication user: `8:acs:<resource id>_<identity id>`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="identities")
    created_at = models.DateTimeField(auto_now_add=True)
    # Every token carries the generation it was issued in; revoking bumps it, so every
    # token issued before is refused at once, with no list of revoked tokens to keep.
    token_generation = models.PositiveIntegerField(default=0)
    tokens_revoked_at = models.DateTimeField(null=True, blank=True)
    last_token_issued_at = models.DateTimeField(null=True, blank=True)
    # Where calls to this identity go: its browsers, or an application (Call Automation).
    incoming_calls = models.CharField(
        max_length=16, choices=IncomingCalls.choices, default=IncomingCalls.CLIENT
    )
    # A name for people in the console only: the ACS API and its SDKs never show it.
    label = models.CharField(max_length=IDENTITY_LABEL_MAX_LENGTH, blank=True, default="")
    # The label casefolded, which search matches by prefix (services.search_identities).
    # Casefolding can lengthen a label (ß is ss), hence the room.
    label_key = models.CharField(
        max_length=3 * IDENTITY_LABEL_MAX_LENGTH, blank=True, default="", editable=False
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "communication identities"
        indexes = [
            models.Index(fields=["resource", "-created_at"]),
            # A label's prefix within one resource. PostgreSQL's pattern operator class lets
            # LIKE 'abc%' walk this index whatever the database's collation; SQLite ignores it.
            models.Index(
                fields=["resource", "label_key"],
                name="identity_label_prefix",
                opclasses=["uuid_ops", "varchar_pattern_ops"],
            ),
            # A GUID's prefix within one resource: a range of ids (services.search_identities).
            models.Index(fields=["resource", "id"], name="identity_resource_id"),
        ]

    def __str__(self) -> str:
        return self.raw_id

    @property
    def raw_id(self) -> str:
        return f"8:acs:{self.resource_id}_{self.id}"

"""Resources, members, access keys, communication identities and their access tokens.

Every view, API view and command goes through these functions: they hold the rules.
"""

from __future__ import annotations

import functools
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as PortalUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts import origins, tokens
from apps.accounts.exceptions import (
    AccessDenied,
    DuplicateResourceName,
    IdentityNotFound,
    InvalidExpiry,
    InvalidResourceName,
    InvalidScopes,
    LastOwner,
    MemberNotFound,
    ResourceNotFound,
    TokenRefused,
    UserNotFound,
)
from apps.accounts.models import (
    IDENTITY_LABEL_MAX_LENGTH,
    CommunicationIdentity,
    IncomingCalls,
    Membership,
    Resource,
    Role,
    new_access_key,
)
from apps.accounts.token_times import token_times
from apps.core import realtime, rows, sql
from apps.core import services as core_services
from apps.core.errors import ApiError
from apps.core.parsers import is_single_line
from apps.core.sql import column
from apps.metrics import counters as metric_counters

User = get_user_model()
AnyUser = PortalUser | AnonymousUser

# --- Roles ------------------------------------------------------------------------------
VIEW = "view"
READ_KEYS = "read_keys"
MANAGE_KEYS = "manage_keys"
MANAGE_IDENTITIES = "manage_identities"
MANAGE_RESOURCE = "manage_resource"
MANAGE_MEMBERS = "manage_members"
MANAGE_NUMBERS = "manage_numbers"
SEND_SMS = "send_sms"
MANAGE_EVENTS = "manage_events"
MANAGE_ROOMS = "manage_rooms"

ROLE_PERMISSIONS: dict[str, set[str]] = {
    Role.OWNER: {
        VIEW,
        READ_KEYS,
        MANAGE_KEYS,
        MANAGE_IDENTITIES,
        MANAGE_RESOURCE,
        MANAGE_MEMBERS,
        MANAGE_NUMBERS,
        SEND_SMS,
        MANAGE_EVENTS,
        MANAGE_ROOMS,
    },
    Role.CONTRIBUTOR: {
        VIEW,
        READ_KEYS,
        MANAGE_IDENTITIES,
        MANAGE_NUMBERS,
        SEND_SMS,
        MANAGE_EVENTS,
        MANAGE_ROOMS,
    },
    Role.READER: {VIEW},
}


def role_of(user: AnyUser, resource: Resource) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return Role.OWNER
    membership = Membership.objects.filter(resource=resource, user_id=user.pk).first()
    return membership.role if membership else None


def can(user: AnyUser, resource: Resource, permission: str) -> bool:
    role = role_of(user, resource)
    return role is not None and permission in ROLE_PERMISSIONS[role]


def access_resource(user: AnyUser, slug: str, permission: str = VIEW) -> Resource:
    """The resource `slug` if `user` holds `permission` on it.

    Raises ResourceNotFound when the user has no role at all (so a stranger learns nothing),
    AccessDenied when the role is too weak.
    """
    resource = Resource.objects.filter(slug=slug).first()
    role = role_of(user, resource) if resource else None
    if resource is None or role is None:
        raise ResourceNotFound(f"Resource {slug!r} was not found.")
    if permission not in ROLE_PERMISSIONS[role]:
        raise AccessDenied(f"Your role ({Role(role).label}) does not allow this.")
    return resource


def list_resources(user: AnyUser) -> QuerySet[Resource]:
    if user.is_staff:
        return Resource.objects.all()
    if not user.is_authenticated:
        return Resource.objects.none()
    return Resource.objects.filter(memberships__user_id=user.pk)


# --- Resources --------------------------------------------------------------------------
def check_resource_name(name: str, *, exclude: Resource | None = None) -> str:
    """A valid, untaken resource name. Raises InvalidResourceName or DuplicateResourceName."""
    name = _clean_name(name)
    taken = Resource.objects.filter(name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise DuplicateResourceName(f"A resource named {name!r} already exists.", target="name")
    return name


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidResourceName("A resource name must be 1 to 100 characters.", target="name")
    if not is_single_line(name):
        raise InvalidResourceName("A resource name holds no control characters.", target="name")
    if not slugify(name):
        raise InvalidResourceName(
            "A resource name needs at least one letter or digit.", target="name"
        )
    return name


def _unique_slug(name: str) -> str:
    # A DNS label too (the resource's host name under SPOOL_RESOURCE_DOMAIN): no underscores.
    base = slugify(name).replace("_", "-")[:50].strip("-") or "resource"
    slug = base
    while Resource.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(2)}"
    return slug


def create_resource(name: str, *, owner: AnyUser | None = None) -> Resource:
    """Create a resource with fresh keys; `owner` becomes its Owner. Raises DuplicateResourceName."""
    name = check_resource_name(name)
    for attempt in range(3):
        try:
            with transaction.atomic():
                resource = Resource.objects.create(
                    name=name, slug=_unique_slug(name), port=origins.free_resource_port()
                )
                if owner is not None and owner.is_authenticated:
                    Membership.objects.create(resource=resource, user_id=owner.pk, role=Role.OWNER)
            return resource
        except IntegrityError:
            # Another creation took the same name, slug or port meanwhile; only the name is final.
            if Resource.objects.filter(name__iexact=name).exists() or attempt == 2:
                raise DuplicateResourceName(
                    f"A resource named {name!r} already exists.", target="name"
                ) from None
    raise AssertionError("unreachable")


def rename_resource(resource: Resource, name: str) -> Resource:
    """Change the display name; the slug (and so the endpoint) stays."""
    resource.name = check_resource_name(name, exclude=resource)
    resource.save(update_fields=["name"])
    return resource


def delete_resource(resource: Resource) -> None:
    """Delete the resource with its identities and memberships; its keys stop working."""
    for identity in resource.identities.only("id"):
        _close_sockets(identity, "The resource has been deleted.")
    resource.delete()
    # Its slug may be given again; its requests must not show under the new resource.
    core_services.forget_requests(resource.slug)


def regenerate_key(resource: Resource, which: str) -> Resource:
    """Replace the primary or secondary key; the old one is refused from the next request."""
    if which not in ("primary", "secondary"):
        raise InvalidResourceName(
            "Key must be 'primary' or 'secondary'.", code="InvalidKeyType", target="key"
        )
    with transaction.atomic():
        setattr(resource, f"{which}_key", new_access_key())
        setattr(resource, f"{which}_key_rotated_at", timezone.now())
        resource.save(update_fields=[f"{which}_key", f"{which}_key_rotated_at"])
    return resource


def resource_endpoint(resource: Resource) -> str:
    """The resource's own origin (apps/accounts/origins.py): what connection strings name."""
    return origins.resource_endpoint(resource)


def path_endpoint(resource: Resource) -> str:
    """`/r/<slug>/` on the console's origin, which stays valid for existing clients."""
    return origins.path_endpoint(resource)


def connection_string(resource: Resource, which: str = "primary") -> str:
    key = resource.primary_key if which == "primary" else resource.secondary_key
    return f"endpoint={resource_endpoint(resource)};accesskey={key}"


# --- Members ----------------------------------------------------------------------------
def list_members(resource: Resource) -> QuerySet[Membership]:
    return resource.memberships.select_related("user")


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise AccessDenied(
            f"Role must be one of {', '.join(Role.values)}.", status=400, code="InvalidRole"
        )
    return role


def add_member(resource: Resource, username_or_email: str, role: str) -> Membership:
    """Give an existing portal user a role on the resource (or change the one they have)."""
    role = _check_role(role)
    user = (
        (
            User.objects.filter(username__iexact=username_or_email).first()
            or User.objects.filter(email__iexact=username_or_email).first()
        )
        if isinstance(username_or_email, str) and is_single_line(username_or_email)
        else None  # (no name holds a NUL, which PostgreSQL cannot compare)
    )
    if user is None:
        raise UserNotFound(f"No user {username_or_email!r}: they must sign up first.")
    with transaction.atomic():
        membership, created = Membership.objects.select_for_update().get_or_create(
            resource=resource, user=user, defaults={"role": role}
        )
        if not created:
            _change_role(membership, role)
    return membership


def _owners_left_without(membership: Membership) -> int:
    return (
        Membership.objects.filter(resource=membership.resource_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .count()
    )


def _change_role(membership: Membership, role: str) -> None:
    if (
        membership.role == Role.OWNER
        and role != Role.OWNER
        and not _owners_left_without(membership)
    ):
        raise LastOwner("A resource needs at least one owner.")
    membership.role = role
    membership.save(update_fields=["role"])


def change_member_role(resource: Resource, member_id: int, role: str) -> Membership:
    role = _check_role(role)
    with transaction.atomic():
        membership = _access_member(resource, member_id)
        _change_role(membership, role)
    return membership


def remove_member(resource: Resource, member_id: int) -> None:
    with transaction.atomic():
        membership = _access_member(resource, member_id)
        if membership.role == Role.OWNER and not _owners_left_without(membership):
            raise LastOwner("A resource needs at least one owner.")
        membership.delete()


def _access_member(resource: Resource, member_id: int) -> Membership:
    membership = (
        Membership.objects.select_for_update().filter(resource=resource, pk=member_id).first()
    )
    if membership is None:
        raise MemberNotFound(f"Member {member_id} was not found.")
    return membership


# --- Identities and tokens ----------------------------------------------------------------
# A token may carry several; the widest one present governs (ACS's own example asks for all five).
SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
MIN_EXPIRY_MINUTES = 60
MAX_EXPIRY_MINUTES = 24 * 60


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_on: datetime


@dataclass(frozen=True)
class TokenPrincipal:
    """Who a valid user access token speaks for."""

    identity: CommunicationIdentity
    scopes: frozenset[str]

    @property
    def raw_id(self) -> str:
        return self.identity.raw_id

    @property
    def log_name(self) -> str:
        """Who the request log says called (apps/core/request_log.py)."""
        return self.identity.raw_id


def check_token_request(scopes: Any, expires_in_minutes: Any = None) -> tuple[list[str], int]:
    """Validate raw scopes and expiry from a caller. Raises InvalidScopes or InvalidExpiry."""
    if not isinstance(scopes, list) or not scopes:
        raise InvalidScopes("scopes must be a non-empty list.", target="scopes")
    unknown = [s for s in scopes if not isinstance(s, str) or s not in SCOPES]
    if unknown:
        raise InvalidScopes(
            f"Unknown scope {unknown[0]!r}; valid scopes are {', '.join(SCOPES)}.", target="scopes"
        )
    chosen = list(dict.fromkeys(scopes))
    if expires_in_minutes is None:
        expires_in_minutes = MAX_EXPIRY_MINUTES
    if isinstance(expires_in_minutes, bool) or not isinstance(expires_in_minutes, int):
        raise InvalidExpiry("expiresInMinutes must be an integer.", target="expiresInMinutes")
    if not MIN_EXPIRY_MINUTES <= expires_in_minutes <= MAX_EXPIRY_MINUTES:
        raise InvalidExpiry(
            f"expiresInMinutes must be between {MIN_EXPIRY_MINUTES} and {MAX_EXPIRY_MINUTES}.",
            target="expiresInMinutes",
        )
    return chosen, expires_in_minutes


def list_identities(resource: Resource) -> QuerySet[CommunicationIdentity]:
    return resource.identities.all()


def parse_raw_id(resource: Resource, raw_id: str) -> uuid.UUID | None:
    """The identity uuid in `8:acs:<resource>_<id>` when it belongs to `resource`."""
    prefix = f"8:acs:{resource.id}_"
    if not raw_id.startswith(prefix):
        return None
    try:
        return uuid.UUID(raw_id[len(prefix) :])
    except ValueError:
        return None


def access_identity(resource: Resource, raw_id: str) -> CommunicationIdentity:
    """The identity with this raw id in this resource. Raises IdentityNotFound otherwise,
    including for another resource's identity (tenants never see each other)."""
    identity_id = parse_raw_id(resource, raw_id)
    identity = (
        CommunicationIdentity.objects.filter(resource=resource, pk=identity_id).first()
        if identity_id
        else None
    )
    if identity is None:
        raise IdentityNotFound(f"Identity {raw_id!r} was not found.", target="id")
    return identity


def create_identity(
    resource: Resource, *, scopes: Any = None, expires_in_minutes: Any = None, label: Any = ""
) -> tuple[CommunicationIdentity, IssuedToken | None]:
    """Create an identity, and a token for it when scopes are given; the scopes, expiry and
    label are validated first, so a refusal creates nothing. Raises InvalidScopes,
    InvalidExpiry, or ApiError (InvalidLabel)."""
    checked = check_token_request(scopes, expires_in_minutes) if scopes is not None else None
    label = check_identity_label(label)
    identity = CommunicationIdentity.objects.create(
        resource=resource, label=label, label_key=label.casefold()
    )
    token = do_issue_token(identity, *checked) if checked else None
    return identity, token


def issue_token(
    identity: CommunicationIdentity, scopes: Any, expires_in_minutes: Any = None
) -> IssuedToken:
    chosen, minutes = check_token_request(scopes, expires_in_minutes)
    return do_issue_token(identity, chosen, minutes)


def issue_token_for(
    resource: Resource, raw_id: str, scopes: Any, expires_in_minutes: Any = None
) -> IssuedToken:
    """Issue a token to the identity `raw_id` of `resource` (the ACS API's hot path: one
    indexed read). Raises InvalidScopes, InvalidExpiry or IdentityNotFound; a refusal writes nothing."""
    chosen, minutes = check_token_request(scopes, expires_in_minutes)
    identity_id = parse_raw_id(resource, raw_id)
    generation = (
        CommunicationIdentity.objects.filter(pk=identity_id, resource=resource)
        .values_list("token_generation", flat=True)
        .first()
        if identity_id
        else None
    )
    if identity_id is None or generation is None:
        raise IdentityNotFound(f"Identity {raw_id!r} was not found.", target="id")
    return issue_checked_token(raw_id, identity_id, resource.id, generation, chosen, minutes)


def issue_checked_token(
    raw_id: str,
    identity_id: uuid.UUID,
    resource_id: uuid.UUID,
    generation: int,
    scopes: list[str],
    minutes: int,
) -> IssuedToken:
    """Sign a token for an identity just read (its token generation) with scopes and lifetime
    that check_token_request passed, and note it: the last-issued time (written behind the
    hot path) and the metric. Shared by the view and the token route (token_route.py)."""
    token = _sign_token(raw_id, resource_id, generation, scopes, minutes)
    token_times.add(identity_id, timezone.now())
    metric_counters.count(resource_id, "tokens.issued")
    return token


def do_issue_token(identity: CommunicationIdentity, scopes: list[str], minutes: int) -> IssuedToken:
    """Sign a token for already-validated scopes and lifetime; record the time at once
    (the console shows it on the next page)."""
    token = _sign_token(
        identity.raw_id, identity.resource_id, identity.token_generation, scopes, minutes
    )
    CommunicationIdentity.objects.filter(pk=identity.pk).update(last_token_issued_at=timezone.now())
    metric_counters.count(identity.resource_id, "tokens.issued")
    return token


def _sign_token(
    raw_id: str, resource_id: uuid.UUID, generation: int, scopes: list[str], minutes: int
) -> IssuedToken:
    now = timezone.now()
    expires_on = (now + timedelta(minutes=minutes)).replace(microsecond=0)
    claims = {
        "sub": raw_id,
        "skypeid": raw_id.removeprefix("8:"),
        "resourceId": str(resource_id),
        "scp": " ".join(scopes),
        "acsScope": ",".join(scopes),
        "gen": generation,
        "iss": settings.PUBLIC_URL,
        "iat": int(now.timestamp()),
        "exp": int(expires_on.timestamp()),
    }
    return IssuedToken(token=tokens.sign(claims), expires_on=expires_on)


def set_incoming_calls(identity: CommunicationIdentity, where: str) -> CommunicationIdentity:
    """Route calls to the identity to its calling clients or to the resource's application."""
    if where not in IncomingCalls.values:
        raise ApiError(
            "incoming_calls must be client, application or ivr.", target="incoming_calls"
        )
    identity.incoming_calls = where
    identity.save(update_fields=["incoming_calls"])
    return identity


# --- Identity labels and search -----------------------------------------------------------
# Labels are the console's names for identities; the ACS API and its SDKs never show them.
IDENTITY_SEARCH_LIMIT = 20
# Labels match by prefix through an index over the whole resource; a word inside a label
# (contains) is looked for among this many of the resource's newest identities only, so a
# search costs the same with a million identities as with a thousand.
LABEL_CONTAINS_SCAN = 5000
_QUERY_MAX_LENGTH = 100
_HEX_DIGITS = frozenset("0123456789abcdef")
# Marks that reorder the text after them (bidirectional overrides and isolates): a label shows
# beside ids and inside messages, where one would garble what follows.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def check_identity_label(label: Any) -> str:
    """A valid label: stripped, one line, at most IDENTITY_LABEL_MAX_LENGTH characters; ""
    means none. Raises ApiError (InvalidLabel)."""
    if not isinstance(label, str):
        raise ApiError("A label must be text.", code="InvalidLabel", target="label")
    label = label.strip()
    if not is_single_line(label) or any(char in _BIDI_CONTROLS for char in label):
        raise ApiError(
            "A label is one line of text without control characters.",
            code="InvalidLabel",
            target="label",
        )
    if len(label) > IDENTITY_LABEL_MAX_LENGTH:
        raise ApiError(
            f"A label is at most {IDENTITY_LABEL_MAX_LENGTH} characters.",
            code="InvalidLabel",
            target="label",
        )
    return label


def set_identity_label(identity: CommunicationIdentity, label: Any) -> CommunicationIdentity:
    """Name the identity in the console ("" clears the name). Raises ApiError (InvalidLabel)
    and then changes nothing."""
    identity.label = check_identity_label(label)
    identity.label_key = identity.label.casefold()
    identity.save(update_fields=["label", "label_key"])
    return identity


def search_identities(
    resource: Resource, query: str, *, limit: int = IDENTITY_SEARCH_LIMIT
) -> list[CommunicationIdentity]:
    """At most `limit` identities of `resource` that `query` names, best first: labels that
    start with it (alphabetical), then ids that start with it (a raw id `8:acs:...` or the
    first characters of the GUID, whole or cut short), then labels with it inside (among the
    newest LABEL_CONTAINS_SCAN identities). An empty query gives the newest identities.

    Each step reads one index of (resource, ...) and at most `limit` rows, or LABEL_CONTAINS_SCAN
    for a word inside; a query no identity could match (another resource's raw id, a control
    character) finds nothing."""
    query = query.strip() if isinstance(query, str) else ""
    if len(query) > _QUERY_MAX_LENGTH or not is_single_line(query):
        return []
    identities = CommunicationIdentity.objects.filter(resource=resource)
    if not query:
        return list(identities.order_by("-created_at")[:limit])
    key = query.casefold()
    found = list(identities.filter(label_key__startswith=key).order_by("label_key", "id")[:limit])
    id_prefix = _id_prefix(resource, query)
    if id_prefix is not None and len(found) < limit:
        by_id = identities.exclude(pk__in=[identity.pk for identity in found])
        if id_prefix:
            low, high = (uuid.UUID(id_prefix.ljust(32, fill)) for fill in "0f")
            by_id = by_id.filter(id__gte=low, id__lte=high).order_by("id")
        else:
            by_id = by_id.order_by("-created_at")
        found += by_id[: limit - len(found)]
    if len(found) < limit:
        # Read off the (resource, -created_at) index and matched here: a LIKE '%...%' on the
        # newest rows, left to PostgreSQL's planner, may read every identity of the resource.
        seen = {identity.pk for identity in found}
        newest = identities.order_by("-created_at").values_list("pk", "label_key")
        inside = sorted(
            (label_key, pk)
            for pk, label_key in newest[:LABEL_CONTAINS_SCAN]
            if key in label_key and pk not in seen
        )[: limit - len(found)]
        by_pk = identities.in_bulk([pk for _, pk in inside])
        found += [by_pk[pk] for _, pk in inside if pk in by_pk]
    return found


def _id_prefix(resource: Resource, query: str) -> str | None:
    """The hex digits an identity id of `resource` starts with, when `query` can be the start
    of its raw id or of its GUID; None otherwise."""
    query = query.lower()
    raw_prefix = f"8:acs:{resource.id}_"
    if query.startswith("8:"):
        if raw_prefix.startswith(query):
            return ""  # the resource's own prefix, still being typed: any of its identities
        if not query.startswith(raw_prefix):
            return None  # another resource's identity, or no identity at all
        query = query[len(raw_prefix) :]
    elif not query.strip("-"):
        return None  # dashes alone are no part of a GUID worth a search
    digits = query.replace("-", "")
    if len(digits) > 32 or not _HEX_DIGITS.issuperset(digits):
        return None
    return digits


def revoke_tokens(identity: CommunicationIdentity) -> None:
    """Refuse every token issued to the identity so far (new ones work again)."""
    from django.db.models import F

    CommunicationIdentity.objects.filter(pk=identity.pk).update(
        token_generation=F("token_generation") + 1, tokens_revoked_at=timezone.now()
    )
    identity.refresh_from_db(fields=["token_generation", "tokens_revoked_at"])
    _close_sockets(identity, "The token has been revoked.")


def delete_identity(identity: CommunicationIdentity) -> None:
    """Delete the identity and everything it owns; its tokens are refused from now on."""
    _close_sockets(identity, "The identity has been deleted.")
    identity.delete()


def identity_group(identity_id: uuid.UUID | str) -> str:
    """The realtime group every socket of one identity joins."""
    return realtime.group_name("identity", identity_id)


def _close_sockets(identity: CommunicationIdentity, reason: str) -> None:
    realtime.publish(identity_group(identity.id), {"type": "tokensRevoked", "reason": reason})


def authenticate_token(token: str) -> TokenPrincipal:
    """The identity a user access token speaks for. Raises TokenRefused when the token is
    invalid or expired, was revoked, or its identity (or resource) is gone."""
    verified = verify_token(token)
    return verified.principal(send_identities_read([verified.identity_id])())


@dataclass(frozen=True)
class VerifiedToken:
    """A user access token whose signature and expiry hold, before its identity is read: a
    caller can read the identities of many tokens at once (send_identities_read: the chat
    message route reads a batch's in one statement). `resource_id`: the resource the token
    names (not yet checked)."""

    resource_id: uuid.UUID
    identity_id: uuid.UUID
    claims: dict[str, Any]

    def principal(self, identities: Mapping[uuid.UUID, CommunicationIdentity]) -> TokenPrincipal:
        """Whom the token speaks for, its identity looked up in `identities` (read by
        send_identities_read). Raises TokenRefused when the identity (or its resource) is
        gone or the token was revoked."""
        identity = identities.get(self.identity_id)
        if identity is None or identity.resource_id != self.resource_id:
            raise TokenRefused("The token's identity no longer exists.")
        if self.claims.get("gen") != identity.token_generation:
            raise TokenRefused("The token has been revoked.")
        scopes = frozenset(str(self.claims.get("scp", "")).split())
        return TokenPrincipal(identity=identity, scopes=scopes)


def verify_token(token: str) -> VerifiedToken:
    """The token's signature and expiry checked; nothing is read from the database. Raises
    TokenRefused when the token is invalid or expired."""
    try:
        claims = _verified_claims(token)
    except tokens.InvalidToken as error:
        raise TokenRefused(str(error)) from None
    sub = str(claims.get("sub", ""))
    resource_part, _, identity_part = sub.removeprefix("8:acs:").partition("_")
    try:
        return VerifiedToken(uuid.UUID(resource_part), uuid.UUID(identity_part), claims)
    except ValueError:
        raise TokenRefused("The token's identity no longer exists.") from None


# Tokens whose signature was checked, with their claims and their signing key's id: a chat
# client sends the same token with every post, and checking its signature again was a tenth
# of the post's CPU (profiled, bench/chat.py). Emptied when full.
_verified: dict[str, tuple[dict[str, Any], str]] = {}
VERIFIED_TOKENS_KEPT = 4096


def _verified_claims(token: str) -> dict[str, Any]:
    """tokens.verify(token), remembered until the token expires or its signing key is gone
    (deleted after a leak): then tokens.verify checks it again, and refuses it. Raises
    InvalidToken."""
    known = _verified.get(token)
    if known is not None:
        claims, kid = known
        if claims["exp"] > time.time() and tokens.key_store().find(kid) is not None:
            return claims
    claims = tokens.verify(token)
    if len(_verified) >= VERIFIED_TOKENS_KEPT:
        _verified.clear()
    _verified[token] = (claims, str(jwt.get_unverified_header(token).get("kid", "")))
    return claims


def send_identities_read(
    identity_ids: Collection[uuid.UUID],
) -> Callable[[], dict[uuid.UUID, CommunicationIdentity]]:
    """The identities (each with its resource) by id, in one plain-SQL read, sent now
    (sql.send; inside sql.pipeline() it goes out with what is sent after it): every API call
    and socket with a token makes it, and building it through the ORM cost more than running
    it (profiled, bench/chat.py). Returns the function that gives them."""
    identities, resources = rows.columns(CommunicationIdentity), rows.columns(Resource)
    uuid_field = CommunicationIdentity._meta.pk
    assert uuid_field is not None
    db = sql.database()
    wanted = sorted(set(identity_ids))
    found = sql.send(
        _identities_query(len(wanted)),
        [uuid_field.get_db_prep_value(identity_id, db) for identity_id in wanted],
    )

    def read() -> dict[uuid.UUID, CommunicationIdentity]:
        by_id = {}
        for row in found():
            identity = identities.instance(row[: len(identities)])
            identity.resource = resources.instance(row[len(identities) :])
            by_id[identity.id] = identity
        return by_id

    return read


@functools.cache
def _identities_query(count: int) -> str:
    identities, resources = rows.columns(CommunicationIdentity), rows.columns(Resource)
    return (
        f"SELECT {identities.select('i')}, {resources.select('r')} "
        f"FROM {identities.table} i JOIN {resources.table} r "
        f"ON r.{column(Resource, 'id')} = i.{column(CommunicationIdentity, 'resource')} "
        f"WHERE i.{column(CommunicationIdentity, 'id')} IN ({', '.join(['%s'] * count)})"
    )


def authenticate_socket(token: str, host: str) -> TokenPrincipal:
    """authenticate_token for a socket opened on `host`: on a resource's own origin the token
    must be that resource's. Raises TokenRefused."""
    principal = authenticate_token(token)
    try:
        resource = origins.resource_for_host(host)
    except origins.UnknownResourceHost:
        raise TokenRefused("No resource answers at this host.") from None
    if resource is not None and resource.pk != principal.identity.resource_id:
        raise TokenRefused("The token belongs to another resource.")
    return principal

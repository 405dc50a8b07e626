"""The token route, `POST [/r/<slug>]/identities/<id>/:issueAccessToken`, answered without
Django's request machinery.

Token issuance is the platform's busiest request (every client app asks for tokens, often),
and Django's middleware, URL resolver and DRF cost several times the work itself: profiled
at 32 clients, the signature, the identity's read, the quota and the signing were a third of
the web process's time. This route does that work alone, on the web process's event loop
(apps/core/wsgi_bridge.py), with one query that reads the identity and its resource's keys.

Only an ordinary success is answered here, and a quota's refusal (counted once). Anything
else returns None and Django answers it, with the views' own errors: a browser's request
(CORS), plain HTTP from afar, a host Django would refuse, another api-version or parameter,
a body that is not JSON or asks for something invalid, a bad signature, an unknown identity,
a database error. What a success does is shared with the view: the request's checks and the
answer's headers and log (shortcuts.py), the signature check (auth.check_signature), the quota
(core.quotas), the token (services.issue_checked_token); tests/accounts/test_token_route.py
holds the two answers side by side.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from apps.accounts import services, shortcuts
from apps.accounts.api.acs_urls import ISSUE_TOKEN_ROUTE
from apps.accounts.api.acs_views import IDENTITY_API_VERSIONS, token_body
from apps.accounts.auth import Unauthorized, check_signature
from apps.accounts.models import CommunicationIdentity, Resource
from apps.core import quotas, sql
from apps.core.errors import ApiError
from apps.core.sql import column, table
from apps.core.wsgi_bridge import Answer

PATH = re.compile(shortcuts.SLUG_PREFIX + r"/identities/(?P<raw_id>[^/]+)/:issueAccessToken")
RAW_ID_PREFIX = "8:acs:"
QUOTA = "tokens"


def answer(scope: dict[str, Any], body: bytes) -> Answer | None:
    """The answer to a token request, or None to leave the request to Django."""
    if scope["method"] != "POST" or not scope["path"].endswith("/:issueAccessToken"):
        return None
    request = shortcuts.read(scope, body, PATH, IDENTITY_API_VERSIONS)
    if request is None:
        return None
    ids = _parse_raw_id(request.route["raw_id"])
    if ids is None:
        return None
    resource_id, identity_id = ids
    try:
        scopes, minutes = services.check_token_request(
            request.fields.get("scopes"), request.fields.get("expiresInMinutes")
        )
    except ApiError:
        return None
    try:
        found = _identity_and_keys(request.lookup, resource_id, identity_id)
    except DatabaseError:  # Django's path reconnects and answers
        return None
    if found is None:
        return None
    generation, slug, keys = found
    try:
        key_name = check_signature(request.signed, slug, keys)
    except Unauthorized:
        return None
    logged_as = shortcuts.Logged(ISSUE_TOKEN_ROUTE, slug, key_name)
    try:
        quotas.spend(QUOTA, resource_id, settings.QUOTAS[QUOTA], what=QUOTA)
    except quotas.QuotaExceeded as refused:
        return shortcuts.refuse(request, logged_as, refused)
    token = services.issue_checked_token(
        request.route["raw_id"], identity_id, resource_id, generation, scopes, minutes
    )
    content = json.dumps(token_body(token), separators=(",", ":")).encode()
    return shortcuts.respond(request, logged_as, 200, content)


def _parse_raw_id(raw_id: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The resource's and the identity's ids in `8:acs:<resource id>_<identity id>`."""
    if not raw_id.startswith(RAW_ID_PREFIX):
        return None
    resource_part, _, identity_part = raw_id[len(RAW_ID_PREFIX) :].partition("_")
    try:
        return uuid.UUID(resource_part), uuid.UUID(identity_part)
    except ValueError:
        return None


def _identity_and_keys(
    lookup: dict[str, Any], resource_id: uuid.UUID, identity_id: uuid.UUID
) -> tuple[int, str, list[bytes]] | None:
    """The identity's token generation, and its resource's slug and access keys, in one
    query; None when the resource the request addresses has no such identity."""
    ((field, value),) = lookup.items()
    uuid_field = CommunicationIdentity._meta.pk
    assert uuid_field is not None
    db = sql.database()
    found = sql.fetch(
        _identity_query(field),
        [
            uuid_field.get_db_prep_value(identity_id, db),
            uuid_field.get_db_prep_value(resource_id, db),
            value,
        ],
    )
    if not found:
        return None
    generation, slug, primary, secondary = found[0]
    keys = shortcuts.access_keys(primary, secondary)
    return None if keys is None else (generation, slug, keys)


@functools.cache
def _identity_query(resource_field: str) -> str:
    """The SQL of the identity's read, built once: building it through the ORM cost as much
    as the rest of the request (profiled). `resource_field`: slug or port."""
    identity, resource = CommunicationIdentity, Resource
    return (
        f"SELECT i.{column(identity, 'token_generation')}, r.{column(resource, 'slug')}, "
        f"r.{column(resource, 'primary_key')}, r.{column(resource, 'secondary_key')} "
        f"FROM {table(identity)} i JOIN {table(resource)} r "
        f"ON r.{column(resource, 'id')} = i.{column(identity, 'resource')} "
        f"WHERE i.{column(identity, 'id')} = %s AND i.{column(identity, 'resource')} = %s "
        f"AND r.{column(resource, resource_field)} = %s"
    )

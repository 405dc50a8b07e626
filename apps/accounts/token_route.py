"""The token route, `POST [/r/<slug>]/identities/<id>/:issueAccessToken`, answered without
Django's request machinery.

Token issuance is the platform's busiest request (every client app asks for tokens, often),
and Django's middleware, URL resolver and DRF cost several times the work itself: profiled
at 32 clients, the signature, the identity's read, the quota and the signing were a third of
the web process's time. This route does that work alone, on the web process's event loop
(apps/core/wsgi_bridge.py), but for the identity's read: that goes to this process's reading
thread (a GroupCommit, apps/core/batching.py), which reads the identities of every request
pending in one query (`_read`), and the loop takes the next requests meanwhile. (Read on the
loop, a request at a time, the read held it ~0.3 ms a token on PostgreSQL under load.)

Only an ordinary success is answered here, and a quota's refusal (counted once). Anything
else is left to Django, which answers with the views' own errors: a browser's request
(CORS), plain HTTP from afar, a host Django would refuse, another api-version or parameter,
a body that is not JSON or asks for something invalid (None at once), a bad signature, an
unknown identity or one of another resource, a database error (once the batch has read).
What a success does is shared with the view: the request's checks and the answer's headers
and log (shortcuts.py), the signature check (auth.check_signature), the quota (core.quotas),
the token (services.issue_checked_token); tests/accounts/test_token_route.py holds the two
answers side by side.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from apps.accounts import services, shortcuts
from apps.accounts.api.acs_urls import ISSUE_TOKEN_ROUTE
from apps.accounts.api.acs_views import IDENTITY_API_VERSIONS, token_body
from apps.accounts.auth import Unauthorized, check_signature
from apps.accounts.models import CommunicationIdentity, Resource
from apps.core import quotas, sql
from apps.core.batching import GroupCommit
from apps.core.errors import ApiError
from apps.core.sql import column, table
from apps.core.wsgi_bridge import Answer

PATH = re.compile(shortcuts.SLUG_PREFIX + r"/identities/(?P<raw_id>[^/]+)/:issueAccessToken")
RAW_ID_PREFIX = "8:acs:"
QUOTA = "tokens"


@dataclass(eq=False)
class _TokenRequest:
    """A token request whose body holds up, on its way through a batch of reads (`_read`)."""

    request: shortcuts.ApiRequest
    resource_id: uuid.UUID
    identity_id: uuid.UUID
    scopes: list[str]
    minutes: int
    # After the read: the identity's token generation, its resource's slug and keys; None
    # when the resource the request addresses has no such identity.
    found: tuple[int, str, list[bytes]] | None = None

    def answerer(self) -> Callable[[], Answer | None]:
        """What makes the answer, once the identity is read: on the event loop
        (apps/core/wsgi_bridge.py), so the reading thread only reads."""
        return self.answer

    def answer(self) -> Answer | None:
        """The token, or None to leave the request to Django."""
        if self.found is None:
            return None
        generation, slug, keys = self.found
        request = self.request
        try:
            key_name = check_signature(request.signed, slug, keys)
        except Unauthorized:
            return None
        logged_as = shortcuts.Logged(ISSUE_TOKEN_ROUTE, slug, key_name)
        try:
            quotas.spend(QUOTA, self.resource_id, settings.QUOTAS[QUOTA], what=QUOTA)
        except quotas.QuotaExceeded as refused:
            return shortcuts.refuse(request, logged_as, refused)
        token = services.issue_checked_token(
            request.route["raw_id"],
            self.identity_id,
            self.resource_id,
            generation,
            self.scopes,
            self.minutes,
        )
        content = json.dumps(token_body(token), separators=(",", ":")).encode()
        return shortcuts.respond(request, logged_as, 200, content)


def _read(pending: list[_TokenRequest]) -> None:
    """Read the identities of a batch of token requests, with their resources' slugs, ports and
    keys, in one query: read on the event loop, one request at a time, a read held the loop
    ~0.3 ms a token on PostgreSQL, while it could have taken the next requests."""
    uuid_field = CommunicationIdentity._meta.pk
    assert uuid_field is not None
    db = sql.database()
    wanted = sorted({item.identity_id for item in pending})
    found = {
        row[0]: row[1:]
        for row in sql.fetch(
            _identities_query(len(wanted)),
            [uuid_field.get_db_prep_value(identity_id, db) for identity_id in wanted],
        )
    }
    for item in pending:
        row = found.get(uuid_field.get_db_prep_value(item.identity_id, db))
        if row is None:
            continue
        resource_id, generation, slug, port, primary, secondary = row
        ((field, value),) = item.request.lookup.items()
        addressed = slug if field == "slug" else port
        if uuid_field.to_python(resource_id) != item.resource_id or addressed != value:
            continue  # not an identity of the resource the request addresses
        keys = shortcuts.access_keys(primary, secondary)
        if keys is not None:
            item.found = (generation, slug, keys)


# Requests come from the event loop one at a time: a moment of gathering makes fewer, larger
# batches, as for SMS sends (apps/sms/send_route.py). bench/tokens.py on PostgreSQL, 32
# clients, two runs each: no gathering 2,235 / 2,410 tokens/s at p99 40 / 62 ms, 1 ms 2,206 /
# 2,594 at p99 35 / 27 ms.
GATHER_SECONDS = 0.001
identities_read = GroupCommit(
    "token-reads", _read, inline=lambda: not settings.GROUP_COMMIT, gather=GATHER_SECONDS
)


def answer(scope: dict[str, Any], body: bytes) -> Future[Callable[[], Answer | None]] | None:
    """A Future of what makes the answer to a token request (it may make None: Django answers
    it after all), or None to leave the request to Django at once. The identity is read in a
    batch, on the reading thread (`_read`); the rest runs on the event loop."""
    item = pending(scope, body)
    if item is None:
        return None
    try:
        return identities_read.submit(item, then=item.answerer)
    except DatabaseError:  # read at once (tests): Django's path reconnects and answers
        return None


def pending(scope: dict[str, Any], body: bytes) -> _TokenRequest | None:
    """A token request whose path and body hold up, for a batch to read its identity; None for
    anything else."""
    if scope["method"] != "POST" or not scope["path"].endswith("/:issueAccessToken"):
        return None
    request = shortcuts.read(scope, body, PATH, IDENTITY_API_VERSIONS)
    if request is None:
        return None
    ids = _parse_raw_id(request.route["raw_id"])
    if ids is None:
        return None
    try:
        scopes, minutes = services.check_token_request(
            request.fields.get("scopes"), request.fields.get("expiresInMinutes")
        )
    except ApiError:
        return None
    return _TokenRequest(request, *ids, scopes, minutes)


def _parse_raw_id(raw_id: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The resource's and the identity's ids in `8:acs:<resource id>_<identity id>`."""
    if not raw_id.startswith(RAW_ID_PREFIX):
        return None
    resource_part, _, identity_part = raw_id[len(RAW_ID_PREFIX) :].partition("_")
    try:
        return uuid.UUID(resource_part), uuid.UUID(identity_part)
    except ValueError:
        return None


@functools.cache
def _identities_query(count: int) -> str:
    """The SQL of the identities' read, built once per size: building it through the ORM cost
    as much as the rest of the request (profiled)."""
    identity, resource = CommunicationIdentity, Resource
    return (
        f"SELECT i.{column(identity, 'id')}, i.{column(identity, 'resource')}, "
        f"i.{column(identity, 'token_generation')}, r.{column(resource, 'slug')}, "
        f"r.{column(resource, 'port')}, "
        f"r.{column(resource, 'primary_key')}, r.{column(resource, 'secondary_key')} "
        f"FROM {table(identity)} i JOIN {table(resource)} r "
        f"ON r.{column(resource, 'id')} = i.{column(identity, 'resource')} "
        f"WHERE i.{column(identity, 'id')} IN ({', '.join(['%s'] * count)})"
    )

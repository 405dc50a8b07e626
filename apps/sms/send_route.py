"""The SMS send route, `POST [/r/<slug>]/sms`, answered without Django's request machinery,
its rows committed together with other requests' (a group commit).

Profiled at 32 clients (bench/sms.py), a single-recipient send spent most of its web process
in Django's middleware, DRF and building ORM queries, and a third of its wall time waiting for
SQLite's write lock, which every accepted request took once, in turn with the other web
process and the delivering workers. Here the request's checks (apps/accounts/shortcuts.py),
one query for the resource's keys, the sender's SMS capability and the recipients' opt-outs,
and the quota run on the web process's event loop (a loop shortcut, apps/core/wsgi_bridge.py);
the rows go to this process's GroupCommit, whose thread stores everything pending in one
transaction. The loop awaits the commit and takes the next requests meanwhile, and the 202
goes out only once the rows are committed: nothing answered is lost.

Only an ordinary acceptance is answered here, and a quota's refusal (counted once); anything
else returns None and Django answers it, with the view's own errors: whatever shortcuts.read
leaves to Django, a body the view refuses, a bad signature, a sender the resource cannot send
from, a database error. If the commit fails (a repeatability id stored meanwhile by another
request), Django answers the request from the start: the view replays the stored result. What
an acceptance does is shared with the view: services.check_send_request, prepare_send and
store_accepted; tests/sms/test_send_route.py holds the two answers side by side.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from concurrent.futures import Future
from typing import Any

from django.conf import settings
from django.db import DatabaseError

from apps.accounts import shortcuts
from apps.accounts.auth import Unauthorized, check_signature
from apps.accounts.models import Resource
from apps.core import quotas, sql
from apps.core.batching import GroupCommit
from apps.core.errors import ApiError
from apps.core.sql import column, table
from apps.core.wsgi_bridge import Answer
from apps.numbers.models import NumberStatus, PhoneNumber
from apps.sms import optouts, services
from apps.sms.api.acs_views import SMS_API_VERSIONS, SmsView
from apps.sms.models import OptOut, SmsMessage

PATH = re.compile(shortcuts.SLUG_PREFIX + "/sms")
ROUTE = "sms"  # its pattern in apps/sms/api/acs_urls.py, as the request log names it
QUOTA = SmsView.quota


def _store(batches: list[list[SmsMessage]]) -> None:
    services.store_accepted([row for rows in batches for row in rows])


# Sends come from the event loop one at a time: 3 ms of gathering made batches of ~6 rows
# instead of ~2 (bench/sms.py on PostgreSQL: p99 ~70 -> ~50 ms, web CPU 0.87 -> 0.73 ms/send).
GATHER_SECONDS = 0.003
accepted = GroupCommit(
    "sms-accepted", _store, inline=lambda: not settings.GROUP_COMMIT, gather=GATHER_SECONDS
)


def answer(scope: dict[str, Any], body: bytes) -> Answer | Future[Answer] | None:
    """The answer to a send request (a Future of it once rows are to be stored), or None to
    leave the request to Django."""
    if scope["method"] != "POST" or not scope["path"].endswith("/sms"):
        return None
    request = shortcuts.read(scope, body, PATH, SMS_API_VERSIONS)
    if request is None:
        return None
    try:
        send = services.check_send_request(request.fields)
    except ApiError:
        return None
    try:
        found = _resource_and_sender(request.lookup, send.sender, services.deliverable(send))
    except DatabaseError:  # Django's path reconnects and answers
        return None
    if found is None:
        return None
    resource_id, slug, keys, sms_capability, opted_out = found
    try:
        key_name = check_signature(request.signed, slug, keys)
    except Unauthorized:
        return None
    if sms_capability not in services.SENDING_CAPABILITIES:
        return None  # not the resource's number, or it may not send: the view says which
    logged_as = shortcuts.Logged(ROUTE, slug, key_name)
    try:
        quotas.spend(QUOTA, resource_id, settings.QUOTAS[QUOTA], what=QUOTA)
    except quotas.QuotaExceeded as refused:
        return shortcuts.refuse(request, logged_as, refused)
    try:
        results, rows = services.prepare_send(resource_id, send, opted_out)
    except DatabaseError:
        return None
    content = json.dumps({"value": results}, separators=(",", ":")).encode()

    def respond() -> Answer:
        return shortcuts.respond(request, logged_as, 202, content)

    if not rows:  # every recipient refused or replayed: nothing to store
        return respond()
    return accepted.submit(rows, then=respond)


def _resource_and_sender(
    lookup: dict[str, Any], sender: str, recipients: list[str]
) -> tuple[uuid.UUID, str, list[bytes], str | None, set[str]] | None:
    """The resource's id, slug and access keys, the SMS capability of its owned number
    `sender` (None if it owns no such number), and which of `recipients` opted out of
    `sender`, in one query (a round trip fewer on the request's thread than reading the
    opt-outs apart; they are used only once the signature holds); None for no such resource."""
    ((field, value),) = lookup.items()
    found = sql.fetch(
        _resource_query(field, len(recipients)),
        [sender, NumberStatus.OWNED, sender, *recipients, value],
    )
    if not found:
        return None
    resource_id, slug, primary, secondary, sms_capability, _ = found[0]
    keys = shortcuts.access_keys(primary, secondary)
    if keys is None:
        return None
    pk = Resource._meta.pk
    assert pk is not None
    opted_out = {recipient for *_, recipient in found if recipient is not None}
    return pk.to_python(resource_id), slug, keys, sms_capability, opted_out


@functools.cache
def _resource_query(resource_field: str, recipients: int) -> str:
    """The SQL of the resource's, its sender's and the opt-outs' read, built once per shape
    (through the ORM, building it cost more than running it). `resource_field`: slug or port;
    one row per opted-out recipient, or one with none."""
    resource, number = Resource, PhoneNumber
    return (
        f"SELECT r.{column(resource, 'id')}, r.{column(resource, 'slug')}, "
        f"r.{column(resource, 'primary_key')}, r.{column(resource, 'secondary_key')}, "
        f"n.{column(number, 'owned_sms')}, o.{column(OptOut, 'recipient')} "
        f"FROM {table(resource)} r LEFT JOIN {table(number)} n "
        f"ON n.{column(number, 'owner')} = r.{column(resource, 'id')} "
        f"AND n.{column(number, 'number')} = %s AND n.{column(number, 'status')} = %s "
        f"LEFT JOIN {table(OptOut)} o ON {optouts.opted_out_condition('o', recipients)} "
        f"WHERE r.{column(resource, resource_field)} = %s"
    )

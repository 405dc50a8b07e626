"""The SMS send route, `POST [/r/<slug>]/sms`, answered without Django's request machinery,
its rows committed together with other requests' (a group commit).

Profiled at 32 clients (bench/sms.py), a single-recipient send spent most of its web process
in Django's middleware, DRF and building ORM queries, and a third of its wall time waiting for
SQLite's write lock, which every accepted request took once, in turn with the other web
process and the delivering workers. Here the request is read and its body checked on the web
process's event loop (a loop shortcut, apps/core/wsgi_bridge.py; apps/accounts/shortcuts.py),
and handed to this process's GroupCommit, whose thread takes every send pending as one batch:
one query per resource and sender in it reads the resource's keys, the sender's SMS capability
and the recipients' opt-outs (`_check`), each send's signature and quota are checked, and the
rows of all are stored in one transaction. The loop awaits the batch and takes the next
requests meanwhile, and the 202 goes out only once the rows are committed: nothing answered is
lost. (Read on the loop, one request at a time, the query held the loop ~1 ms a send on
PostgreSQL under load, most of it waiting: run against run, ~1,050 -> ~1,500 sends/s at 32
clients, p99 ~65 -> ~45 ms; on SQLite ~1,550 -> ~1,950/s.)

Only an ordinary acceptance is answered here, and a quota's refusal (counted once); anything
else is left to Django, which answers with the view's own errors: whatever shortcuts.read
leaves, a body the view refuses (None at once), a bad signature, a sender the resource cannot
send from, a database error (a Future of None, once the batch has checked it). If the commit
fails (a repeatability id stored meanwhile by another request), the batch is stored send by
send, without checking or counting any again, and Django answers the one that fails from the
start: the view replays the stored result. What an acceptance does is shared with the view:
services.check_send_request, prepare_send and store_accepted; tests/sms/test_send_route.py
holds the two answers side by side.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
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


@dataclass(eq=False)
class _Send:
    """A send request on its way through a batch (`_store`), and what came of it."""

    request: shortcuts.ApiRequest
    send: services.SendRequest
    checked: bool = False  # once: a batch retried item by item does not check again
    # After the checks: None leaves the request to Django; else what to answer with.
    logged_as: shortcuts.Logged | None = None
    refused: quotas.QuotaExceeded | None = None
    content: bytes = b""
    rows: list[SmsMessage] = field(default_factory=list)

    def answerer(self) -> Callable[[], Answer | None]:
        """What makes the answer once the batch is stored: the event loop calls it
        (apps/core/wsgi_bridge.py), so the commit thread, which every batch waits for, does
        not build answers and their request log lines."""
        return self.answer

    def answer(self) -> Answer | None:
        if self.logged_as is None:
            return None
        if self.refused is not None:
            return shortcuts.refuse(self.request, self.logged_as, self.refused)
        return shortcuts.respond(self.request, self.logged_as, 202, self.content)


def _store(sends: list[_Send]) -> None:
    _check([send for send in sends if not send.checked])
    services.store_accepted([row for send in sends for row in send.rows])


# Sends come from the event loop one at a time: a moment of gathering makes fewer, larger
# batches (each a read and a commit). bench/sms.py on PostgreSQL, sends checked in the batch:
# 1.5 ms gave ~1,600 sends/s at p99 38-43 ms, 3 ms ~1,450/s at p99 39-46 ms.
GATHER_SECONDS = 0.0015
accepted = GroupCommit(
    "sms-accepted", _store, inline=lambda: not settings.GROUP_COMMIT, gather=GATHER_SECONDS
)


def answer(scope: dict[str, Any], body: bytes) -> Future[Callable[[], Answer | None]] | None:
    """A Future of what makes the answer to a send request (it may make None: Django answers
    it after all), or None to leave the request to Django at once. Its checks against the database run in its
    batch, on the commit thread (`_check`)."""
    send = pending(scope, body)
    return None if send is None else accepted.submit(send, then=send.answerer)


def pending(scope: dict[str, Any], body: bytes) -> _Send | None:
    """A send request whose body holds up, for a batch to check and store; None for
    anything else."""
    if scope["method"] != "POST" or not scope["path"].endswith("/sms"):
        return None
    request = shortcuts.read(scope, body, PATH, SMS_API_VERSIONS)
    if request is None:
        return None
    try:
        return _Send(request, services.check_send_request(request.fields))
    except ApiError:
        return None


def _check(sends: list[_Send]) -> None:
    """Check a batch's sends against the database, one read for all those of one resource and
    sender (a read per request, on the event loop, held it ~1 ms each on PostgreSQL under
    load, most of that waiting), and prepare the rows of those that pass. A send that does
    not pass is left to Django (`logged_as` stays None), which says why."""
    groups: dict[tuple[tuple[tuple[str, Any], ...], str], list[_Send]] = {}
    for item in sends:
        item.checked = True
        key = (tuple(item.request.lookup.items()), item.send.sender)
        groups.setdefault(key, []).append(item)
    for (_, sender), group in groups.items():
        recipients = sorted({to for item in group for to in services.deliverable(item.send)})
        try:
            found = _resource_and_sender(group[0].request.lookup, sender, recipients)
        except DatabaseError:  # Django's path reconnects and answers
            continue
        if found is not None:
            for item in group:
                _check_one(item, *found)


def _check_one(
    pending: _Send,
    resource_id: uuid.UUID,
    slug: str,
    keys: list[bytes],
    sms_capability: str | None,
    opted_out: set[str],
) -> None:
    request, send = pending.request, pending.send
    try:
        key_name = check_signature(request.signed, slug, keys)
    except Unauthorized:
        return
    if sms_capability not in services.SENDING_CAPABILITIES:
        return  # not the resource's number, or it may not send: the view says which
    logged_as = shortcuts.Logged(ROUTE, slug, key_name)
    try:
        quotas.spend(QUOTA, resource_id, settings.QUOTAS[QUOTA], what=QUOTA)
    except quotas.QuotaExceeded as refused:
        pending.logged_as, pending.refused = logged_as, refused
        return
    try:
        results, pending.rows = services.prepare_send(resource_id, send, opted_out)
    except DatabaseError:
        return
    pending.content = json.dumps({"value": results}, separators=(",", ":")).encode()
    pending.logged_as = logged_as


# The recipients one read asks about (a batch's, of one resource and sender): a request's
# limit, so the statements' shapes stay few (each is prepared once per shape).
MAX_RECIPIENTS_READ = services.MAX_RECIPIENTS


def _resource_and_sender(
    lookup: dict[str, Any], sender: str, recipients: list[str]
) -> tuple[uuid.UUID, str, list[bytes], str | None, set[str]] | None:
    """The resource's id, slug and access keys, the SMS capability of its owned number
    `sender` (None if it owns no such number), and which of `recipients` opted out of
    `sender`, in one query (one per MAX_RECIPIENTS_READ recipients); None for no such
    resource."""
    ((field_name, value),) = lookup.items()
    rows: list[tuple[Any, ...]] = []
    for start in range(0, max(len(recipients), 1), MAX_RECIPIENTS_READ):
        chunk = recipients[start : start + MAX_RECIPIENTS_READ]
        rows += sql.fetch(
            _resource_query(field_name, len(chunk)),
            [sender, NumberStatus.OWNED, sender, *chunk, value],
        )
    if not rows:
        return None
    resource_id, slug, primary, secondary, sms_capability, _ = rows[0]
    keys = shortcuts.access_keys(primary, secondary)
    if keys is None:
        return None
    pk = Resource._meta.pk
    assert pk is not None
    opted_out = {recipient for *_, recipient in rows if recipient is not None}
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

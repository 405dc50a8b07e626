"""Mid-call events for the application: stored as `Callback` rows numbered per connection, and
POSTed to the callback URI as CloudEvents (an array of one, as ACS sends them), in order per
connection, through the safe outbound module (apps/core/outbound.py).

Each request carries `Authorization: Bearer <JWT>` signed with Spool's token keys (verify it
against `/.well-known/jwks.json`; `aud` is the resource's endpoint), as ACS signs its callbacks.

Order: a callback goes out only when every earlier one of its connection is delivered or has
given up, so one worker at a time walks a connection's queue (a claim on its first pending
row). A failed attempt is retried after CALLBACK_RETRY_SECONDS, then given up after
CALLBACK_TTL_MINUTES; later callbacks wait meanwhile, as an app expects PlayCompleted after
PlayStarted. Beat's sweep picks up what a lost task message or a dead worker left.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.tokens import sign
from apps.automation.models import Callback, CallbackState, CallConnection
from apps.core import outbound
from apps.core.api import rfc3339

if TYPE_CHECKING:
    from apps.automation.models import MediaOperation

logger = logging.getLogger(__name__)

PREFIX = "Microsoft.Communication."
# The callback URI of connections the built-in IVR holds: handled in the worker, not POSTed.
BUILT_IN_IVR_URI = "spool://built-in-ivr"
CLAIM_MARGIN_SECONDS = 10
SWEEP_BATCH = 200
# resultInformation of media operations, as ACS reports them (code, subCode, message).
RESULTS: dict[tuple[str, str], tuple[int, int, str]] = {
    ("play", "completed"): (200, 0, "Action completed successfully."),
    ("play", "canceled"): (400, 8508, "Action failed, the operation was canceled."),
    ("recognize", "canceled"): (400, 8508, "Action failed, the operation was canceled."),
    ("sendDtmf", "completed"): (200, 0, "Action completed successfully."),
    ("sendDtmf", "canceled"): (400, 8508, "Action failed, the operation was canceled."),
}
EVENT_NAMES = {
    ("play", "completed"): "PlayCompleted",
    ("play", "failed"): "PlayFailed",
    ("play", "canceled"): "PlayCanceled",
    ("recognize", "completed"): "RecognizeCompleted",
    ("recognize", "failed"): "RecognizeFailed",
    ("recognize", "canceled"): "RecognizeCanceled",
    ("sendDtmf", "completed"): "SendDtmfTonesCompleted",
    ("sendDtmf", "failed"): "SendDtmfTonesFailed",
    ("sendDtmf", "canceled"): "SendDtmfTonesFailed",
}


def emit(
    connection: CallConnection,
    name: str,
    data: dict[str, Any],
    *,
    url: str = "",
    result: tuple[int, int, str] | None = None,
) -> Callback:
    """Store callback `name` for `connection` (next in its order) and queue its delivery once
    the transaction commits. `data` gets the fields every event carries."""
    with transaction.atomic():
        CallConnection.objects.filter(pk=connection.pk).update(
            next_callback_seq=F("next_callback_seq") + 1
        )
        seq = (
            CallConnection.objects.values_list("next_callback_seq", flat=True).get(pk=connection.pk)
            - 1
        )
        body = {
            "callConnectionId": str(connection.pk),
            "serverCallId": str(connection.call_id),
            "correlationId": str(connection.correlation_id),
            **data,
        }
        body.setdefault("operationContext", connection.operation_context or None)
        if body["operationContext"] is None:
            del body["operationContext"]
        if result is not None:
            body["resultInformation"] = {
                "code": result[0],
                "subCode": result[1],
                "message": result[2],
            }
        now = timezone.now()
        callback = Callback.objects.create(
            connection=connection,
            seq=seq,
            event_type=PREFIX + name,
            url=url or connection.callback_uri,
            data=body,
            created_at=now,
            next_attempt_at=now,
        )
        connection_id = str(connection.pk)
        transaction.on_commit(lambda: queue_delivery(connection_id))
    return callback


def emit_operation_end(
    operation: MediaOperation,
    state: str,
    *,
    result: tuple[int, int, str] | None = None,
    data: dict[str, Any] | None = None,
) -> Callback:
    """The callback that ends a media operation (PlayCompleted, RecognizeFailed, ...)."""
    name = EVENT_NAMES[(operation.kind, state)]
    result = result or RESULTS.get((operation.kind, state)) or (500, 9999, "Unknown error.")
    body = {"operationContext": operation.operation_context or None, **(data or {})}
    return emit(operation.connection, name, body, url=operation.callback_uri, result=result)


def queue_delivery(connection_id: str) -> None:
    from apps.automation.tasks import deliver_callbacks

    try:
        deliver_callbacks.delay(connection_id)
    except Exception:  # the sweep queues it once the broker is back
        logger.exception("could not queue callbacks of call connection %s", connection_id)


def deliver_pending(connection_id: str) -> int:
    """Send the connection's due callbacks in order, until one fails or none is due. Returns
    how many were delivered. Call outside any transaction."""
    delivered = 0
    while True:
        callback = _claim_next(connection_id)
        if callback is None:
            return delivered
        if not _attempt(callback):
            return delivered
        delivered += 1


def _claim_next(connection_id: str) -> Callback | None:
    now = timezone.now()
    first = (
        Callback.objects.filter(connection_id=uuid.UUID(connection_id), state=CallbackState.PENDING)
        .order_by("seq")
        .first()
    )
    if first is None or first.next_attempt_at > now:
        return None
    lease = now + timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS)
    claimed = (
        Callback.objects.filter(pk=first.pk, state=CallbackState.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .update(lease_until=lease)
    )
    if not claimed:
        return None  # another worker walks this connection's queue
    return Callback.objects.select_related("connection__resource").get(pk=first.pk)


def cloud_event(callback: Callback) -> dict[str, Any]:
    return {
        "id": str(callback.pk),
        "source": f"calling/callConnections/{callback.connection_id}",
        "type": callback.event_type,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "time": rfc3339(callback.created_at),
        "subject": f"calling/callConnections/{callback.connection_id}",
        "data": callback.data,
    }


def authorization(callback: Callback) -> str:
    resource = callback.connection.resource
    now = int(time.time())
    token = sign(
        {
            "iss": settings.PUBLIC_URL or "spool",
            "aud": accounts.resource_endpoint(resource),
            "sub": f"calling/callConnections/{callback.connection_id}",
            "jti": str(callback.pk),
            "iat": now,
            "exp": now + 300,
        }
    )
    return f"Bearer {token}"


def _attempt(callback: Callback) -> bool:
    """POST one callback; record what happened. True when delivered or given up (the next one
    may go), False when it waits for a retry."""
    if callback.url == BUILT_IN_IVR_URI:
        from apps.automation import ivr

        ivr.handle(cloud_event(callback))
        Callback.objects.filter(pk=callback.pk).update(
            state=CallbackState.DELIVERED,
            delivered_at=timezone.now(),
            lease_until=None,
            attempt_count=callback.attempt_count + 1,
        )
        return True
    body = json.dumps([cloud_event(callback)])
    answer = outbound.request(
        "POST",
        callback.url,
        body=body.encode(),
        headers={
            "Content-Type": "application/cloudevents-batch+json; charset=utf-8",
            "Authorization": authorization(callback),
        },
        deadline=settings.CALLBACK_TIMEOUT_SECONDS,
    )
    now = timezone.now()
    attempts = callback.attempt_count + 1
    fields: dict[str, Any] = {
        "attempt_count": attempts,
        "lease_until": None,
        "last_status_code": answer.status_code,
        "last_error": (answer.error or "")[:200],
    }
    if answer.status_code is not None and 200 <= answer.status_code < 300:
        Callback.objects.filter(pk=callback.pk).update(
            **fields, state=CallbackState.DELIVERED, delivered_at=now
        )
        return True
    if _given_up(callback, now):
        Callback.objects.filter(pk=callback.pk).update(**fields, state=CallbackState.FAILED)
        logger.info("gave up callback %s after %d attempts", callback.pk, attempts)
        return True
    Callback.objects.filter(pk=callback.pk).update(
        **fields, next_attempt_at=now + timedelta(seconds=_retry_delay(attempts))
    )
    return False


def _given_up(callback: Callback, now: datetime) -> bool:
    return now >= callback.created_at + timedelta(minutes=settings.CALLBACK_TTL_MINUTES)


def _retry_delay(attempts: int) -> int:
    steps = settings.CALLBACK_RETRY_SECONDS
    return int(steps[min(attempts, len(steps)) - 1])


def sweep() -> int:
    """Queue delivery for each connection whose first pending callback is due and free."""
    now = timezone.now()
    due = (
        Callback.objects.filter(state=CallbackState.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .values_list("connection_id", flat=True)
        .distinct()[:SWEEP_BATCH]
    )
    ids = [str(pk) for pk in due]
    for connection_id in ids:
        queue_delivery(connection_id)
    return len(ids)

"""Delivering events to webhooks: claim a due delivery, POST it signed, record the attempt,
and decide what comes next (Event Grid's rules); beat's sweep re-queues what is due.

The row is the job. A claim is a conditional UPDATE of `lease_until`, committed before the
request, so two workers never send one delivery at once (SQLite serializes writers; PostgreSQL
re-checks the WHERE clause after a concurrent update). Retries are due times on the row, not
Celery countdowns: a lost message or a killed worker delays a webhook, never loses it.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.events import schemas, webhooks
from apps.events.models import (
    DeliveryAttempt,
    DeliveryState,
    EventDelivery,
    EventSubscription,
    SubscriptionSchema,
    SubscriptionState,
)
from apps.metrics import exporter

logger = logging.getLogger(__name__)

# A claim outlives the request timeout by this much before the sweep presumes the worker dead.
CLAIM_MARGIN_SECONDS = 30
# A queued task not picked up within this long is presumed lost, and the sweep queues another.
QUEUE_LEASE_SECONDS = 120
SWEEP_BATCH = 500  # tasks queued per sweep at most; the rest wait for the next one


def queue_lease() -> datetime:
    return timezone.now() + timedelta(seconds=QUEUE_LEASE_SECONDS)


def parse_uuid(value: Any) -> Any:
    """A UUID, or None (which matches no row); typed Any so lookups accept both."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def enqueue_on_commit(delivery_ids: list[uuid.UUID]) -> None:
    if delivery_ids:
        ids = [str(pk) for pk in delivery_ids]
        transaction.on_commit(lambda: queue_tasks(ids))


def queue_tasks(delivery_ids: list[str]) -> None:
    from apps.events.tasks import deliver

    for sent, delivery_id in enumerate(delivery_ids):
        try:
            deliver.delay(delivery_id)
        except Exception:
            # The rows are committed: the sweep queues them once the broker is back, at its
            # next run rather than after the queue lease.
            logger.exception("could not queue webhook delivery %s", delivery_id)
            EventDelivery.objects.filter(pk__in=delivery_ids[sent:]).update(queued_until=None)
            return


def queue_validation_on_commit(subscription_id: uuid.UUID) -> None:
    """Queue the handshake of a subscription once the transaction that made it commits."""
    transaction.on_commit(lambda: _queue_validation(str(subscription_id)))


def _queue_validation(subscription_id: str) -> None:
    from apps.events.tasks import validate_subscription

    try:
        validate_subscription.delay(subscription_id)
    except Exception:
        # The row waits as `validating`: the sweep's next run queues it once the broker is back.
        logger.exception("could not queue the handshake of subscription %s", subscription_id)
        EventSubscription.objects.filter(
            pk=subscription_id, state=SubscriptionState.VALIDATING
        ).update(handshake_lease_until=timezone.now())


def retry_delay(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th failed attempt (the last step repeats)."""
    steps = settings.EVENT_RETRY_SECONDS
    return int(steps[min(attempts, len(steps)) - 1])


def deliver(delivery_id: Any) -> str | None:
    """Make one attempt at a due delivery and record it. Returns the delivery's state after,
    or None when there was nothing to do (not due, not pending, or claimed by another worker).

    The claim is a conditional UPDATE committed before the request (call it outside any
    transaction), so a second worker given the same delivery does nothing; a worker killed
    mid-request leaves a lease that expires, and the sweep sends the delivery again.
    """
    now = timezone.now()
    if _subscription_busy(delivery_id, now):
        # Its receiver already holds its share of the workers: the sweep queues this again.
        EventDelivery.objects.filter(pk=parse_uuid(delivery_id)).update(queued_until=None)
        return None
    # The attempt's total deadline is shorter than the claim, so it never outlives it.
    lease = now + timedelta(seconds=settings.EVENT_DELIVERY_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS)
    claimed = (
        EventDelivery.objects.filter(
            pk=parse_uuid(delivery_id),
            state=DeliveryState.PENDING,
            next_attempt_at__lte=now,
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .update(lease_until=lease, queued_until=None)
    )
    if not claimed:
        return None
    delivery = EventDelivery.objects.select_related("event", "subscription__resource").get(
        pk=parse_uuid(delivery_id)
    )
    subscription = delivery.subscription
    if subscription.state != SubscriptionState.ACTIVE:
        # Disabled since: the delivery waits for it to be enabled again.
        EventDelivery.objects.filter(pk=delivery.pk, lease_until=lease).update(lease_until=None)
        return DeliveryState.PENDING
    if delivery.expires_at <= now:
        return _dead_letter(delivery, lease, _expired_reason())
    body, content_type = schemas.envelope(delivery.event, subscription)
    text = json.dumps(body)
    headers = {
        "Content-Type": content_type,
        "aeg-event-type": "Notification",
        "aeg-subscription-name": subscription.name.upper(),
        # Every request of this event to this subscription before this one: retries and manual
        # redeliveries alike (`attempt_count` restarts with a redelivery; the history does not).
        "aeg-delivery-count": str(DeliveryAttempt.objects.filter(delivery_id=delivery.pk).count()),
        **webhooks.sign(subscription.secret, str(delivery.event_id), text, timezone.now()),
    }
    if subscription.schema == SubscriptionSchema.EVENT_GRID:
        headers["aeg-data-version"] = delivery.event.data_version
        headers["aeg-metadata-version"] = "1"
    started = timezone.now()
    answer = webhooks.post(
        subscription.endpoint_url,
        text,
        headers,
        timeout=settings.EVENT_DELIVERY_TIMEOUT_SECONDS,
    )
    return _record(delivery, lease, started, answer)


def _subscription_busy(delivery_id: Any, now: datetime) -> bool:
    """Whether the delivery's subscription has SPOOL_EVENT_CONCURRENCY_PER_SUBSCRIPTION
    attempts in flight already, so that one slow receiver cannot take every worker."""
    subscription_id = (
        EventDelivery.objects.filter(pk=parse_uuid(delivery_id))
        .values_list("subscription_id", flat=True)
        .first()
    )
    in_flight = EventDelivery.objects.filter(
        subscription_id=subscription_id, state=DeliveryState.PENDING, lease_until__gt=now
    ).count()
    return in_flight >= settings.EVENT_CONCURRENCY_PER_SUBSCRIPTION


def _record(
    delivery: EventDelivery, lease: datetime, started: datetime, answer: webhooks.Answer
) -> str | None:
    now = timezone.now()
    attempts = delivery.attempt_count + 1
    code = answer.status_code
    changes: dict[str, Any] = {
        "attempt_count": attempts,
        "lease_until": None,
        "last_status_code": code,
        "last_error": answer.error,
    }
    if code is not None and 200 <= code <= 204:
        changes.update(state=DeliveryState.DELIVERED, delivered_at=now, next_attempt_at=None)
    elif code in (400, 413):
        # Event Grid never retries these: the same request would be refused again.
        changes.update(
            state=DeliveryState.DEAD_LETTERED,
            next_attempt_at=None,
            dead_letter_reason=f"The endpoint answered HTTP {code}, which is not retried.",
        )
    elif attempts >= settings.EVENT_MAX_ATTEMPTS:
        changes.update(
            state=DeliveryState.DEAD_LETTERED,
            next_attempt_at=None,
            dead_letter_reason=f"Gave up after {attempts} attempts; the last: {_outcome(answer)}.",
        )
    elif delivery.expires_at <= now:
        changes.update(
            state=DeliveryState.DEAD_LETTERED,
            next_attempt_at=None,
            dead_letter_reason=f"{_expired_reason()} The last attempt: {_outcome(answer)}.",
        )
    else:
        changes.update(next_attempt_at=now + timedelta(seconds=retry_delay(attempts)))
    with transaction.atomic():
        # Only while our claim holds: past it, another worker owns the row (and its outcome).
        ours = EventDelivery.objects.filter(
            pk=delivery.pk, state=DeliveryState.PENDING, lease_until=lease
        ).update(**changes)
        if ours or EventDelivery.objects.filter(pk=delivery.pk).exists():
            DeliveryAttempt.objects.create(
                delivery_id=delivery.pk,
                started_at=started,
                duration_ms=answer.duration_ms,
                status_code=code,
                error=answer.error,
                response_excerpt=answer.excerpt,
            )
    if not ours:  # the row changed hands (or was deleted) meanwhile: report what it is now
        return EventDelivery.objects.filter(pk=delivery.pk).values_list("state", flat=True).first()
    state = str(changes.get("state", DeliveryState.PENDING))
    exporter.WEBHOOK_ATTEMPTS.labels(_OUTCOMES.get(state, "failed")).inc()  # committed above
    return state


# Prometheus's outcome of an attempt, by the state it left (pending: failed, retried later).
_OUTCOMES: dict[str, str] = {
    DeliveryState.DELIVERED: "succeeded",
    DeliveryState.DEAD_LETTERED: "dead_lettered",
}


def _dead_letter(delivery: EventDelivery, lease: datetime, reason: str) -> str:
    expired = EventDelivery.objects.filter(
        pk=delivery.pk, state=DeliveryState.PENDING, lease_until=lease
    ).update(
        state=DeliveryState.DEAD_LETTERED,
        lease_until=None,
        next_attempt_at=None,
        dead_letter_reason=reason,
    )
    exporter.count_after_commit(exporter.WEBHOOK_EXPIRED, expired)
    return DeliveryState.DEAD_LETTERED


def _expired_reason() -> str:
    return f"The event's time to live ({settings.EVENT_TTL_MINUTES} minutes) ran out."


def _outcome(answer: webhooks.Answer) -> str:
    return f"HTTP {answer.status_code}" if answer.status_code is not None else answer.error


def sweep(limit: int = SWEEP_BATCH) -> int:
    """Queue a task for every due delivery no worker holds (first attempts whose message was
    lost, retries whose time came, claims of killed workers), oldest due first, at most
    `limit`. Also dead-letters deliveries of disabled subscriptions past their time to live.
    Returns how many were queued."""
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    expired = (
        EventDelivery.objects.filter(free, state=DeliveryState.PENDING, expires_at__lte=now)
        .exclude(subscription__state=SubscriptionState.ACTIVE)
        .update(
            state=DeliveryState.DEAD_LETTERED,
            next_attempt_at=None,
            dead_letter_reason=f"{_expired_reason()} The subscription was not active.",
        )
    )
    exporter.count_after_commit(exporter.WEBHOOK_EXPIRED, expired)
    _requeue_handshakes(now)
    due = list(
        EventDelivery.objects.filter(
            free,
            Q(queued_until__isnull=True) | Q(queued_until__lte=now),
            state=DeliveryState.PENDING,
            next_attempt_at__lte=now,
            subscription__state=SubscriptionState.ACTIVE,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if due:
        EventDelivery.objects.filter(pk__in=due).update(
            queued_until=now + timedelta(seconds=QUEUE_LEASE_SECONDS)
        )
        queue_tasks([str(pk) for pk in due])
    return len(due)


def _requeue_handshakes(now: datetime) -> None:
    """Queue again the handshakes whose message was lost or whose worker died."""
    stalled = list(
        EventSubscription.objects.filter(
            state=SubscriptionState.VALIDATING, handshake_lease_until__lte=now
        ).values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for subscription_id in stalled:
        EventSubscription.objects.filter(
            pk=subscription_id, state=SubscriptionState.VALIDATING
        ).update(handshake_lease_until=queue_lease())
        _queue_validation(str(subscription_id))

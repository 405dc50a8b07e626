"""Domain events: stored once, pushed to the console, and delivered to every matching webhook
at least once, with Event Grid's retry and dead-letter rules.

Every app announces what happened through `publish_event`, inside its own transaction: the
event and one EventDelivery row per matching subscription commit with the caller's change (or
not at all), and a task per delivery is queued after the commit. A delivery is claimed by a
conditional UPDATE (so two workers never send it at once), POSTed, and its outcome stored;
retries are due times on the row, which beat's `sweep` turns into tasks again. So a lost
broker message or a killed worker delays a webhook, never loses it.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import ForeignKey, QuerySet
from django.utils import timezone

from apps.accounts.models import Resource
from apps.core import outbound, random_ids, realtime, rows, sql
from apps.core.errors import ApiError
from apps.core.sql import column
from apps.events import dispatch, samples, schemas, webhooks
from apps.events.dispatch import parse_uuid
from apps.events.exceptions import (
    DeliveryNotFound,
    DeliveryPending,
    DuplicateSubscriptionName,
    EventNotFound,
    InvalidSubscription,
    InvalidValidationCode,
    SubscriptionNotActive,
    SubscriptionNotFound,
    WebhookValidationFailed,
)
from apps.events.models import (
    DeliveryAttempt,
    DeliveryState,
    Event,
    EventDelivery,
    EventSubscription,
    SubscriptionSchema,
    SubscriptionState,
)

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9-]{3,64}$")  # Event Grid's rule for subscription names
VALIDATION_MINUTES = 10  # how long a manual validation link works
HANDSHAKE_TIMEOUT_SECONDS = 10
SECRET_BYTES = 32


# --- Subscriptions ---------------------------------------------------------------------------
def new_secret() -> str:
    """A Standard Webhooks signing secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_subscription_request(
    *, name: Any, endpoint_url: Any, event_types: Any, schema: Any
) -> dict[str, Any]:
    """Validate raw subscription fields. Raises InvalidSubscription (400) naming the field."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidSubscription(
            "A subscription name is 3 to 64 letters, digits or hyphens.", target="name"
        )
    # Only its form here; its address is checked when a worker calls it (outbound.py).
    try:
        endpoint_url = outbound.check_url(endpoint_url, target="endpoint_url")
    except outbound.UnsafeUrl as error:
        raise InvalidSubscription(error.message, target="endpoint_url") from None
    return {
        "name": name,
        "endpoint_url": endpoint_url,
        "event_types": check_event_types(event_types),
        "schema": check_schema(schema),
    }


def check_event_types(event_types: Any) -> list[str]:
    """The filter as a list of known ACS type names, duplicates dropped; empty means all."""
    if event_types is None:
        return []
    if not isinstance(event_types, list) or not all(isinstance(t, str) for t in event_types):
        raise InvalidSubscription("event_types must be a list of names.", target="event_types")
    unknown = [t for t in event_types if t not in schemas.EVENT_TYPES]
    if unknown:
        raise InvalidSubscription(
            f"Unknown event type {unknown[0]!r}; the types are named like "
            f"{schemas.SMS_RECEIVED!r}.",
            target="event_types",
        )
    return list(dict.fromkeys(event_types))


def check_schema(schema: Any) -> str:
    if schema in (None, ""):
        return SubscriptionSchema.EVENT_GRID
    if schema not in SubscriptionSchema.values:
        raise InvalidSubscription(
            f"schema must be one of {', '.join(SubscriptionSchema.values)}.", target="schema"
        )
    return str(schema)


def create_subscription(
    resource: Resource,
    *,
    name: Any,
    endpoint_url: Any,
    event_types: Any = None,
    schema: Any = None,
) -> EventSubscription:
    """Subscribe a webhook. It starts `validating`: a worker makes the handshake of its schema
    (`validate_subscription`), so no web request waits on the endpoint.

    Raises InvalidSubscription (or UnsafeUrl) naming the field, or DuplicateSubscriptionName;
    nothing is kept then.
    """
    values = check_subscription_request(
        name=name, endpoint_url=endpoint_url, event_types=event_types, schema=schema
    )
    if resource.event_subscriptions.filter(name=values["name"]).exists():
        raise _duplicate(values["name"])
    subscription = EventSubscription(
        resource=resource,
        secret=new_secret(),
        validation_code=secrets.token_urlsafe(24),
        validation_expires_at=timezone.now() + timedelta(minutes=VALIDATION_MINUTES),
        state=SubscriptionState.VALIDATING,
        handshake_lease_until=dispatch.queue_lease(),
        **values,
    )
    try:
        with transaction.atomic():
            subscription.save(force_insert=True)
            dispatch.queue_validation_on_commit(subscription.pk)
    except IntegrityError:
        raise _duplicate(values["name"]) from None
    return subscription


def revalidate(subscription: EventSubscription) -> EventSubscription:
    """Make the handshake again (after a failure, or when the manual link was lost): a new
    validation code and link, checked by a worker. Raises SubscriptionNotActive for a
    subscription that is validated already or validating."""
    if subscription.state not in (
        SubscriptionState.VALIDATION_FAILED,
        SubscriptionState.AWAITING_VALIDATION,
    ):
        raise SubscriptionNotActive(
            f"{subscription.name} is {subscription.get_state_display().lower()}: only a "
            "subscription whose validation failed or awaits it can be validated again."
        )
    with transaction.atomic():
        EventSubscription.objects.filter(pk=subscription.pk).update(
            state=SubscriptionState.VALIDATING,
            validation_code=secrets.token_urlsafe(24),
            validation_expires_at=timezone.now() + timedelta(minutes=VALIDATION_MINUTES),
            validation_error="",
            handshake_lease_until=dispatch.queue_lease(),
        )
        dispatch.queue_validation_on_commit(subscription.pk)
    subscription.refresh_from_db()
    return subscription


def validate_subscription(subscription_id: Any) -> str | None:
    """The handshake of a `validating` subscription (a worker's job): the endpoint is sent the
    SubscriptionValidationEvent (Event Grid schema: echoing the code activates it; any other
    2xx leaves it awaiting manual validation by the link the event carried) or the
    abuse-protection OPTIONS request (CloudEvents). Returns the state after, or None when
    another worker holds the handshake or there is none to make.

    The claim is a conditional UPDATE of the lease committed before the request (call it
    outside any transaction); the request has a total deadline shorter than the lease.
    """
    subscription = EventSubscription.objects.filter(
        pk=parse_uuid(subscription_id), state=SubscriptionState.VALIDATING
    ).first()
    if subscription is None:
        return None
    lease = timezone.now() + timedelta(
        seconds=HANDSHAKE_TIMEOUT_SECONDS + dispatch.CLAIM_MARGIN_SECONDS
    )
    mine = EventSubscription.objects.filter(
        pk=subscription.pk,
        state=SubscriptionState.VALIDATING,
        handshake_lease_until=subscription.handshake_lease_until,
    ).update(handshake_lease_until=lease)
    if not mine:
        return None
    try:
        validated = _handshake(subscription)
    except WebhookValidationFailed as failure:
        outcome: dict[str, Any] = {
            "state": SubscriptionState.VALIDATION_FAILED,
            "validation_error": failure.message[:300],
        }
    else:
        outcome = {
            "state": SubscriptionState.ACTIVE
            if validated
            else SubscriptionState.AWAITING_VALIDATION,
            "validation_error": "",
        }
        if validated:
            outcome["validated_at"] = timezone.now()
    EventSubscription.objects.filter(
        pk=subscription.pk, state=SubscriptionState.VALIDATING, handshake_lease_until=lease
    ).update(handshake_lease_until=None, **outcome)
    return str(outcome["state"])


def _duplicate(name: str) -> DuplicateSubscriptionName:
    return DuplicateSubscriptionName(
        f"This resource already has a subscription named {name!r}.", target="name"
    )


def validation_url(subscription: EventSubscription) -> str:
    """The manual validation link. Sent to the endpoint only, in the validation event, as
    Event Grid does: whoever can open it controls the endpoint."""
    return (
        f"{settings.PUBLIC_URL}/api/v1/events/validate/{subscription.id}"
        f"?code={subscription.validation_code}"
    )


def _handshake(subscription: EventSubscription) -> bool:
    """True when the endpoint proved at once that it wants the events; False when it accepted
    the validation event without echoing the code (manual validation then). Raises
    WebhookValidationFailed saying why, in terms that reveal nothing of other hosts."""
    url = subscription.endpoint_url
    if subscription.schema == SubscriptionSchema.CLOUD_EVENTS:
        origin = settings.PUBLIC_HOST
        answer = webhooks.options(
            url, {"WebHook-Request-Origin": origin}, timeout=HANDSHAKE_TIMEOUT_SECONDS
        )
        _refuse_unless_ok(answer)
        allowed = answer.header("WebHook-Allowed-Origin").strip()
        if allowed not in (origin, "*"):
            raise WebhookValidationFailed(
                f"The endpoint did not allow deliveries from {origin!r}: its answer to the "
                "CloudEvents validation request (OPTIONS) must carry "
                f"WebHook-Allowed-Origin: {origin} (or *).",
                target="endpoint_url",
            )
        return True
    body = schemas.validation_event(
        subscription, validation_url=validation_url(subscription), now=timezone.now()
    )
    answer = webhooks.post(
        url,
        json.dumps(body),
        {
            "Content-Type": schemas.EVENT_GRID_CONTENT_TYPE,
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": subscription.name.upper(),
            "aeg-delivery-count": "0",
            "aeg-data-version": "2",
            "aeg-metadata-version": "1",
        },
        timeout=HANDSHAKE_TIMEOUT_SECONDS,
    )
    _refuse_unless_ok(answer)
    echoed = _validation_response(answer.body)
    if echoed is None:
        return False
    if not hmac.compare_digest(echoed, subscription.validation_code):
        raise WebhookValidationFailed(
            "The endpoint answered the validation event with a different validationResponse "
            "than the validationCode it was sent.",
            target="endpoint_url",
        )
    return True


def _refuse_unless_ok(answer: webhooks.Answer) -> None:
    if answer.status_code is None:
        raise WebhookValidationFailed(
            f"The endpoint could not be validated: {answer.error}.", target="endpoint_url"
        )
    if not answer.ok:
        raise WebhookValidationFailed(
            f"The endpoint answered the validation request with HTTP {answer.status_code}.",
            target="endpoint_url",
        )


def _validation_response(body: bytes) -> str | None:
    try:
        answer = json.loads(body or b"null")
    except ValueError:
        return None
    code = answer.get("validationResponse") if isinstance(answer, dict) else None
    return code if isinstance(code, str) else None


def _mark_validated(subscription: EventSubscription) -> None:
    """The link was opened: active at once, even while the handshake that sent the link is
    still running (its worker then finds the row changed and leaves it)."""
    now = timezone.now()
    EventSubscription.objects.filter(pk=subscription.pk, validated_at=None).update(validated_at=now)
    EventSubscription.objects.filter(
        pk=subscription.pk,
        state__in=[SubscriptionState.AWAITING_VALIDATION, SubscriptionState.VALIDATING],
    ).update(state=SubscriptionState.ACTIVE, handshake_lease_until=None, validation_error="")


def manually_validate(subscription_id: Any, code: str) -> EventSubscription:
    """Complete an Event Grid handshake by the validation link (no login: the code is the
    secret). Idempotent once validated. Raises SubscriptionNotFound, or InvalidValidationCode
    for a wrong or expired code."""
    subscription = EventSubscription.objects.filter(pk=parse_uuid(subscription_id)).first()
    if subscription is None:
        raise SubscriptionNotFound(f"Subscription {subscription_id!r} was not found.")
    if not hmac.compare_digest(str(code or ""), subscription.validation_code):
        raise InvalidValidationCode("The validation code is not this subscription's.")
    if subscription.validated_at is None:
        if subscription.validation_expires_at <= timezone.now():
            raise InvalidValidationCode(
                f"The validation link expired {VALIDATION_MINUTES} minutes after it was sent; "
                "validate the subscription again to be sent a new one."
            )
        _mark_validated(subscription)
        subscription.refresh_from_db()
    return subscription


def set_subscription_enabled(subscription: EventSubscription, enabled: bool) -> EventSubscription:
    """Disable (no deliveries are attempted; pending ones wait, within their time to live) or
    enable again (active if it was ever validated, else validated again by a worker)."""
    if enabled and subscription.validated_at is None:
        if subscription.state == SubscriptionState.VALIDATING:
            return subscription
        subscription.state = SubscriptionState.AWAITING_VALIDATION
        return revalidate(subscription)
    subscription.state = SubscriptionState.ACTIVE if enabled else SubscriptionState.DISABLED
    subscription.save(update_fields=["state"])
    return subscription


def update_event_types(subscription: EventSubscription, event_types: Any) -> EventSubscription:
    """Change which types the subscription takes (empty: all). Events published from then on
    are matched against the new filter; deliveries already made or queued stay. Raises
    InvalidSubscription (400) naming the field; nothing changes then."""
    subscription.event_types = check_event_types(event_types)
    subscription.save(update_fields=["event_types"])
    return subscription


def delete_subscription(subscription: EventSubscription) -> None:
    """Delete the subscription and its deliveries; the events stay in the resource's log."""
    subscription.delete()


# --- Publishing ------------------------------------------------------------------------------
def publish_event(
    resource: Resource,
    event_type: str,
    *,
    subject: str,
    data: dict[str, Any],
    data_version: str = "1.0",
) -> Event:
    """Store one domain event and queue a delivery to every enabled subscription of the
    resource whose filter matches, after commit. Call inside the caller's transaction: if it
    rolls back, nothing is published.

    Raises ValueError for an event type that is not an ACS Communication type (a programming
    error, not bad input).
    """
    if event_type not in schemas.EVENT_TYPES:
        raise ValueError(f"{event_type!r} is not a known event type (schemas.EVENT_TYPES)")
    with transaction.atomic():
        event = _store_event(resource, event_type, subject=subject, data=data, version=data_version)
        subscriptions = [
            subscription
            for subscription in resource.event_subscriptions.filter(state=SubscriptionState.ACTIVE)
            if subscription.accepts(event_type)
        ]
        _create_deliveries(event, subscriptions)
    return event


@dataclass(frozen=True)
class NewEvent:
    event_type: str
    subject: str
    data: dict[str, Any]
    data_version: str = "1.0"


@dataclass(frozen=True)
class Copies:
    """An event's copies of type `event_type`, one per recipient (chat's per-user events), made
    by `make` only when a subscription takes that type: otherwise nobody reads them, a busy
    thread's would fill the event log, and making them was a twentieth of a chat post
    (profiled, bench/chat.py)."""

    event_type: str
    make: Callable[[], Sequence[NewEvent]]


def publish_events(
    resource: Resource,
    events: Sequence[NewEvent],
    copies: Sequence[Copies] = (),
    *,
    subscriptions: Callable[[], list[EventSubscription]] | None = None,
) -> list[Event]:
    """`publish_event` for several events at once, and the `copies` a subscription takes: one
    query for the subscriptions, one insert for the events and one for their deliveries. Call
    inside the caller's transaction. `subscriptions`: the resource's, as read_subscriptions
    gives them, when the caller read them first."""
    for event_type in [new.event_type for new in events] + [c.event_type for c in copies]:
        if event_type not in schemas.EVENT_TYPES:
            raise ValueError(f"{event_type!r} is not a known event type (schemas.EVENT_TYPES)")
    if not events and not copies:
        return []
    active = (subscriptions or read_subscriptions(resource))()
    taken = [c for c in copies if any(s.accepts(c.event_type) for s in active)]
    events = [*events, *(new for group in taken for new in group.make())]
    now = timezone.now()
    # No savepoint inside the caller's transaction (two round trips per chat message).
    with transaction.atomic(savepoint=False):
        wanted = [(new, [s for s in active if s.accepts(new.event_type)]) for new in events]
        # Plain-SQL inserts (apps/core/rows.py): the ORM's cost more to build than to run.
        stored = [
            Event(
                id=random_ids.uuid4(),  # (not the field's default: uuid.uuid4, a system call)
                resource=resource,
                event_type=new.event_type,
                subject=new.subject,
                data=new.data,
                data_version=new.data_version,
                event_time=now,
            )
            for new, _ in wanted
        ]
        rows.insert(stored)
        expires_at = now + timedelta(minutes=settings.EVENT_TTL_MINUTES)
        deliveries = [
            EventDelivery(
                id=random_ids.uuid4(),
                resource_id=resource.pk,
                event=event,
                subscription=subscription,
                next_attempt_at=now,
                expires_at=expires_at,
                queued_until=dispatch.queue_lease(),
            )
            for event, (_, subs) in zip(stored, wanted, strict=True)
            for subscription in subs
        ]
        rows.insert(deliveries)
        dispatch.enqueue_on_commit([delivery.pk for delivery in deliveries])
        for event in stored:
            _announce_to_console(event)
    return stored


def read_subscriptions(resource: Resource) -> Callable[[], list[EventSubscription]]:
    """The resource's active subscriptions, by name: the read is sent now and the function
    returned gives them (inside sql.pipeline() on PostgreSQL, with the statements sent after
    it). Read at every publication, so a subscription takes events from the next one on; in
    plain SQL, as every chat message reads them (most resources have none) and building the
    ORM's query cost more than running it (profiled, bench/chat.py)."""
    subscriptions = rows.columns(EventSubscription)
    resource_field = EventSubscription._meta.get_field("resource")
    assert isinstance(resource_field, ForeignKey)
    found = sql.send(
        _subscriptions_query(),
        [resource_field.get_db_prep_value(resource.pk, sql.database()), SubscriptionState.ACTIVE],
    )
    return lambda: [subscriptions.instance(row) for row in found()]


@functools.cache
def _subscriptions_query() -> str:
    subscriptions = rows.columns(EventSubscription)
    return (
        f"SELECT {subscriptions.select('s')} FROM {subscriptions.table} s "
        f"WHERE s.{column(EventSubscription, 'resource')} = %s "
        f"AND s.{column(EventSubscription, 'state')} = %s "
        f"ORDER BY s.{column(EventSubscription, 'name')}"
    )


def _announce_to_console(event: Event) -> None:
    realtime.publish(
        realtime.group_name("resource", event.resource_id, "events"),
        {
            "type": "event.published",
            "id": str(event.id),
            "eventType": event.event_type,
            "subject": event.subject,
            "eventTime": schemas.timestamp(event.event_time),
        },
    )


def _store_event(
    resource: Resource, event_type: str, *, subject: str, data: dict[str, Any], version: str
) -> Event:
    event = Event.objects.create(
        resource=resource,
        event_type=event_type,
        subject=subject,
        data=data,
        data_version=version,
        event_time=timezone.now(),
    )
    _announce_to_console(event)
    return event


def _create_deliveries(
    event: Event, subscriptions: Iterable[EventSubscription]
) -> list[EventDelivery]:
    now = timezone.now()
    deliveries = EventDelivery.objects.bulk_create(
        [
            EventDelivery(
                resource_id=event.resource_id,
                event=event,
                subscription=subscription,
                next_attempt_at=now,
                expires_at=event.event_time + timedelta(minutes=settings.EVENT_TTL_MINUTES),
                queued_until=dispatch.queue_lease(),
            )
            for subscription in subscriptions
        ]
    )
    dispatch.enqueue_on_commit([delivery.pk for delivery in deliveries])
    return deliveries


def test_fire(subscription: EventSubscription, *, event_type: Any = None) -> EventDelivery:
    """Publish a sample event to this subscription only: of `event_type` (one the subscription
    takes; None: the first type of its filter, or SMSReceived when it takes all), with data of
    the shape real events of the type carry (samples.py) and subject "/spool/test". It is
    stored and delivered like any other event.

    Raises SubscriptionNotActive, or InvalidSubscription (400, target "event_type") for a type
    that is unknown or that the subscription does not take; nothing is stored then.
    """
    if subscription.state != SubscriptionState.ACTIVE:
        raise SubscriptionNotActive(
            f"{subscription.name} is {subscription.get_state_display().lower()}; "
            "only an active subscription receives events."
        )
    if event_type in (None, ""):
        event_type = (subscription.event_types or [schemas.SMS_RECEIVED])[0]
    if not isinstance(event_type, str) or event_type not in schemas.EVENT_TYPES:
        raise InvalidSubscription(
            f"Unknown event type {event_type!r}; the types are named like "
            f"{schemas.SMS_RECEIVED!r}.",
            target="event_type",
        )
    if not subscription.accepts(event_type):
        raise InvalidSubscription(
            f"{subscription.name} does not take {event_type.removeprefix(schemas.PREFIX)} "
            "events: test it with one of the types it subscribes to.",
            target="event_type",
        )
    with transaction.atomic():
        event = _store_event(
            subscription.resource,
            event_type,
            subject=schemas.TEST_SUBJECT,
            data=samples.sample_data(event_type, subscription.resource, timezone.now()),
            version="1.0",
        )
        return _create_deliveries(event, [subscription])[0]


def redeliver(delivery: EventDelivery) -> EventDelivery:
    """Send a delivered or dead-lettered delivery again, now: its attempt count (which the
    retry cap reads) starts from zero and its time to live from now; earlier attempts stay in
    its history, and the request's aeg-delivery-count goes on counting them. Raises
    DeliveryPending when it is still on its way."""
    now = timezone.now()
    with transaction.atomic():
        again = (
            EventDelivery.objects.filter(pk=delivery.pk)
            .exclude(state=DeliveryState.PENDING)
            .update(
                state=DeliveryState.PENDING,
                attempt_count=0,
                next_attempt_at=now,
                expires_at=now + timedelta(minutes=settings.EVENT_TTL_MINUTES),
                lease_until=None,
                queued_until=dispatch.queue_lease(),
                last_status_code=None,
                last_error="",
                dead_letter_reason="",
                delivered_at=None,
            )
        )
        if not again:
            raise DeliveryPending("This delivery is still pending; it is retried on schedule.")
        dispatch.enqueue_on_commit([delivery.pk])
    delivery.refresh_from_db()
    return delivery


# --- Reading ---------------------------------------------------------------------------------
def access_subscription(resource: Resource, subscription_id: Any) -> EventSubscription:
    """The resource's own subscription. Raises SubscriptionNotFound (also for another
    resource's id: one tenant learns nothing of another's)."""
    subscription = (
        resource.event_subscriptions.select_related("resource")
        .filter(pk=parse_uuid(subscription_id))
        .first()
    )
    if subscription is None:
        raise SubscriptionNotFound(f"Subscription {subscription_id!r} was not found.")
    return subscription


def access_event(resource: Resource, event_id: Any) -> Event:
    event = resource.events.filter(pk=parse_uuid(event_id)).first()
    if event is None:
        raise EventNotFound(f"Event {event_id!r} was not found.")
    return event


def access_delivery(resource: Resource, delivery_id: Any) -> EventDelivery:
    delivery = (
        resource.event_deliveries.select_related("event", "subscription__resource")
        .filter(pk=parse_uuid(delivery_id))
        .first()
    )
    if delivery is None:
        raise DeliveryNotFound(f"Delivery {delivery_id!r} was not found.")
    return delivery


def list_subscriptions(resource: Resource) -> QuerySet[EventSubscription]:
    return resource.event_subscriptions.select_related("resource").order_by("name")


def list_events(resource: Resource, *, event_type: str | None = None) -> QuerySet[Event]:
    events = resource.events.order_by("-event_time", "-pk")
    if event_type:
        events = events.filter(event_type=event_type)
    return events


def list_deliveries(
    resource: Resource, *, state: str | None = None, subscription_id: Any = None
) -> QuerySet[EventDelivery]:
    """The resource's deliveries, newest first. Raises ApiError (400) for an unknown state,
    SubscriptionNotFound for another resource's subscription."""
    deliveries = resource.event_deliveries.select_related("event", "subscription").order_by(
        "-created_at", "-pk"
    )
    if state:
        if state not in DeliveryState.values:
            raise ApiError(
                f"state must be one of {', '.join(DeliveryState.values)}.",
                code="InvalidRequest",
                target="state",
            )
        deliveries = deliveries.filter(state=state)
    if subscription_id:
        deliveries = deliveries.filter(subscription=access_subscription(resource, subscription_id))
    return deliveries


def list_attempts(delivery: EventDelivery) -> QuerySet[DeliveryAttempt]:
    return delivery.attempts.order_by("started_at", "pk")


def delivery_document(delivery: EventDelivery) -> Any:
    """The JSON document the delivery sends, as its subscription receives it."""
    return schemas.envelope(delivery.event, delivery.subscription)[0]

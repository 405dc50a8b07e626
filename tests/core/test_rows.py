"""apps/core/rows.insert: new instances stored by plain SQL as bulk_create stores them."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from apps.accounts.models import Resource
from apps.core import rows
from apps.core.models import RequestLog
from apps.sms.models import Direction, MessageStatus, SmsMessage

pytestmark = pytest.mark.django_db(transaction=True)


def _message(resource: Resource, message_id: str) -> SmsMessage:
    return SmsMessage(
        id=message_id,
        resource=resource,
        direction=Direction.OUTBOUND,
        sender="+14255550100",
        recipient="+447700900001",
        text="Hi",
        encoding="GSM7",
        status=MessageStatus.QUEUED,
    )


def test_instances_get_their_database_ids_and_count_as_saved() -> None:
    entries = [
        RequestLog(
            at=timezone.now(),
            kind="acs",
            method="POST",
            route="sms",
            path="/sms",
            status=202,
            duration_ms=1.0,
            request_id=str(n),
        )
        for n in range(3)
    ]

    rows.insert(entries)

    assert [e.pk for e in entries] == list(
        RequestLog.objects.order_by("pk").values_list("pk", flat=True)
    )
    assert all(not e._state.adding for e in entries)


def test_an_insert_split_in_several_statements_is_one_transaction(
    resource: Resource, monkeypatch: Any
) -> None:
    # given an insert split two rows a statement, whose last statement fails
    _message(resource, "taken").save()
    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 2)
    batch = [_message(resource, f"new-{n}") for n in range(4)] + [_message(resource, "taken")]

    # when it is stored
    with pytest.raises(IntegrityError):
        rows.insert(batch)

    # then none of it is: the rows of the statements before are rolled back too
    assert list(SmsMessage.objects.values_list("id", flat=True)) == ["taken"]

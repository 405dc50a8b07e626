"""The write-behind of "last token issued" on the ACS API's hot path."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity
from apps.accounts.token_times import write_token_times
from apps.core import sql
from apps.core.batching import BackgroundWriter

pytestmark = pytest.mark.django_db


def test_times_are_written_in_one_batch_on_flush(resource, settings, monkeypatch) -> None:
    # given a buffer that flushes every minute, and two identities
    settings.TOKEN_TIME_FLUSH_SECONDS = 60
    buffer = BackgroundWriter("token-times", write_token_times, interval=lambda: 60)
    monkeypatch.setattr(services, "token_times", buffer)
    first, _ = services.create_identity(resource)
    second, _ = services.create_identity(resource)

    # when tokens are issued, nothing is written yet
    services.issue_token_for(resource, first.raw_id, ["chat"])
    services.issue_token_for(resource, second.raw_id, ["chat"])
    services.issue_token_for(resource, first.raw_id, ["voip"])
    assert not CommunicationIdentity.objects.exclude(last_token_issued_at=None).exists()

    # then a flush writes the newest time of each
    buffer.flush()
    assert CommunicationIdentity.objects.exclude(last_token_issued_at=None).count() == 2


def test_a_deleted_identity_does_not_break_the_flush(resource, settings, monkeypatch) -> None:
    settings.TOKEN_TIME_FLUSH_SECONDS = 60
    buffer = BackgroundWriter("token-times", write_token_times, interval=lambda: 60)
    monkeypatch.setattr(services, "token_times", buffer)
    gone, _ = services.create_identity(resource)
    kept, _ = services.create_identity(resource)
    services.issue_token_for(resource, gone.raw_id, ["chat"])
    services.issue_token_for(resource, kept.raw_id, ["chat"])
    services.delete_identity(gone)

    buffer.flush()

    kept.refresh_from_db()
    assert kept.last_token_issued_at is not None
    assert CommunicationIdentity.objects.count() == 1


def test_an_older_time_never_replaces_a_newer_one(resource) -> None:
    # given an identity whose token time another web process already wrote
    identity, _ = services.create_identity(resource)
    newer = timezone.now()
    write_token_times({identity.pk: newer})

    # when this process's batch, older, comes after it
    write_token_times({identity.pk: newer - timedelta(seconds=1)})

    # then the newer time stays, and a newer one still replaces it
    identity.refresh_from_db()
    assert identity.last_token_issued_at == newer
    write_token_times({identity.pk: newer + timedelta(seconds=1)})
    identity.refresh_from_db()
    assert identity.last_token_issued_at == newer + timedelta(seconds=1)


def test_a_batch_larger_than_one_statement_writes_every_identity(resource, monkeypatch) -> None:
    monkeypatch.setattr(sql, "ROWS_PER_UPDATE", 2)
    identities = [services.create_identity(resource)[0] for _ in range(5)]
    at = timezone.now()

    write_token_times(
        {identity.pk: at + timedelta(seconds=n) for n, identity in enumerate(identities)}
    )

    stored = dict(CommunicationIdentity.objects.values_list("pk", "last_token_issued_at"))
    assert [stored[identity.pk] for identity in identities] == [
        at + timedelta(seconds=n) for n in range(5)
    ]

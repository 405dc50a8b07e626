"""The write-behind of "last token issued" on the ACS API's hot path."""

from __future__ import annotations

import pytest

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity
from apps.accounts.token_times import write_token_times
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

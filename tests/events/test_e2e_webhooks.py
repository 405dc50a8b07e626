"""Webhooks through a live `manage.py serve`: the real worker sends, beat's sweep retries."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from standardwebhooks import Webhook

from tests.conftest import LiveSpool, start_spool, stop_spool
from tests.events.conftest import Receiver

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveSpool]:
    # Retries after 1 s and a sweep every second, so a retry shows within the test.
    live, cleanups = start_spool(
        {"SPOOL_EVENT_RETRY_SECONDS": "1", "SPOOL_EVENT_SWEEP_SECONDS": "1"}
    )
    try:
        yield live
    finally:
        stop_spool(live, cleanups)


def _owner_and_resource(live: LiveSpool) -> str:
    script = (
        "from django.contrib.auth.models import User\n"
        "from apps.accounts import services\n"
        f"user = User.objects.create_user('hooks', password='{PASSWORD}')\n"
        "print(services.create_resource('Hooks', owner=user).slug)\n"
    )
    return live.manage("shell", "-c", script).stdout.strip().splitlines()[-1]


def test_a_failed_delivery_is_retried_by_the_sweep_and_arrives_signed(live: LiveSpool) -> None:
    # given a resource, and a receiver that answers the first notification with 500
    slug = _owner_and_resource(live)
    api = requests.Session()
    api.auth = ("hooks", PASSWORD)
    base = f"{live.http_url}/api/v1/resources/{slug}"
    receiver = Receiver()
    receiver.start()
    try:
        receiver.statuses = [500]

        # when a subscription is created (a worker makes the handshake) and test-fired
        created = api.post(
            f"{base}/event-subscriptions/", json={"name": "e2e-hook", "endpoint_url": receiver.url}
        )
        assert created.status_code == 201, created.text
        subscription = created.json()
        assert subscription["state"] == "validating"
        deadline = time.monotonic() + 30
        while subscription["state"] == "validating" and time.monotonic() < deadline:
            time.sleep(0.1)
            subscription = api.get(f"{base}/event-subscriptions/{subscription['id']}/").json()
        assert subscription["state"] == "active", subscription
        fired = api.post(f"{base}/event-subscriptions/{subscription['id']}/test/")
        assert fired.status_code == 202

        # then the worker's first attempt fails, and beat's sweep has it sent again
        deadline = time.monotonic() + 30
        delivery: dict = {}
        while time.monotonic() < deadline:
            delivery = api.get(f"{base}/event-deliveries/{fired.json()['id']}/").json()
            if delivery["state"] != "pending":
                break
            time.sleep(0.2)
        assert delivery["state"] == "delivered", delivery
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]

        # and what arrived verifies with the subscription's secret
        assert len(receiver.notifications) == 2
        last = receiver.notifications[-1]
        assert last.header("aeg-delivery-count") == "1"
        (event,) = Webhook(subscription["secret"]).verify(last.body, last.headers)
        assert event["subject"] == "/spool/test"
    finally:
        receiver.stop()

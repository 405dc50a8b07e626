"""The console's charts: a resource's Metrics page and its data (members only, Readers
included, in a fixed number of queries whatever the range), the Overview's charts, and the
staff page across every resource with the platform's queues, workers and delivery lag."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.core.models import WorkerHeartbeat
from apps.metrics.models import MetricPoint
from apps.metrics.rollup import FIVE_MINUTES, floor
from apps.sms.models import EarlyReceipt

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_reader_sees_the_metrics_of_the_resource_and_no_other(
    resource: Any,
    other_resource: Any,
    owner: Any,
    make_user: Any,
    django_assert_max_num_queries: Any,
) -> None:
    # given a point of each resource in the current interval, and a reader of the first
    start = floor(timezone.now(), FIVE_MINUTES)
    for which, value in ((resource, 7), (other_resource, 100)):
        MetricPoint.objects.create(
            resource=which, metric="sms.sent", minutes=5, start=start, value=value
        )
    accounts.add_member(resource, make_user("reader").username, Role.READER)
    reader = signed_in(_user("reader"))

    # when the reader opens Metrics and its data, over every range
    page = reader.get(f"/resources/{resource.slug}/metrics/")
    assert page.status_code == 200
    assert page.content.count(b'<figure class="chart"') == 8
    assert b"/static/vendor/uplot/uPlot.iife.min.js" in page.content
    for range_name in ("1h", "6h", "24h", "7d", "30d"):
        with django_assert_max_num_queries(8):
            data = reader.get(f"/resources/{resource.slug}/metrics/data/?range={range_name}").json()
        assert data["range"] == range_name

    # then the day's data is its own resource's only
    data = reader.get(f"/resources/{resource.slug}/metrics/data/?range=1h").json()
    assert data["metrics"]["sms.sent"][-1] == 7 and data["totals"]["sms.sent"] == 7
    assert set(data["labels"]) == set(data["metrics"])

    # and another resource's metrics are not found
    assert reader.get(f"/resources/{other_resource.slug}/metrics/data/").status_code == 404


def _user(username: str) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


def test_the_overview_shows_the_main_charts(resource: Any, owner: Any) -> None:
    page = signed_in(owner).get(f"/resources/{resource.slug}/")
    assert page.status_code == 200
    assert b'class="card charts"' in page.content
    assert page.content.count(b'<figure class="chart"') == 4


def test_staff_see_every_resource_and_the_platform_s_health(
    resource: Any, other_resource: Any, owner: Any, make_user: Any
) -> None:
    start = floor(timezone.now(), FIVE_MINUTES)
    for which, value in ((resource, 7), (other_resource, 100)):
        MetricPoint.objects.create(
            resource=which, metric="sms.sent", minutes=5, start=start, value=value
        )
    WorkerHeartbeat.objects.create(hostname="worker-1", last_seen=timezone.now())
    WorkerHeartbeat.objects.create(
        hostname="worker-2", last_seen=timezone.now() - timedelta(hours=1)
    )
    EarlyReceipt.objects.create(carrier_message_id="not-ours", delivered=False)
    EarlyReceipt.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    staff = signed_in(make_user("operator", is_staff=True))

    page = staff.get("/staff/metrics/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "worker-1" in text and "live" in text and "silent" in text
    assert 'id="queue-depths"' in text and 'id="delivery-lag"' in text
    assert '<span class="state warn">1</span> held' in text  # a receipt matching no message
    assert staff.get("/staff/metrics/data/?range=1h").json()["totals"]["sms.sent"] == 107

    # and a member who is not staff sees neither
    member = signed_in(owner)
    assert member.get("/staff/metrics/").status_code in (302, 403)
    assert member.get("/staff/metrics/data/").status_code in (302, 403)

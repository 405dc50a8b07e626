"""The Prometheus endpoint: behind its token (off without one), requests counted by URL pattern
(random paths add no series), SMS and webhook outcomes counted once committed, the scrape-time
readings, several processes summed, JSON log lines, and alert rules that name real metrics."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from apps.calls.models import Call, CallKind
from apps.core import views as core_views
from apps.events import services as events
from apps.events.models import DeliveryState, EventDelivery
from apps.metrics import exporter
from apps.numbers.models import AssignmentType, Capability, NumberStatus
from apps.sms import carriers
from apps.sms import services as sms
from tests.conftest import AcsClient, quote_id
from tests.events.conftest import Receiver

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-metrics-token-0123456789"
TOKEN_ROUTE = "identities/<str:raw_id>/:issueAccessToken"


@pytest.fixture(autouse=True)
def close_thread_connections() -> Iterator[None]:
    """The scrape reads the database in threads with connections of their own (the scrape
    thread, /healthz's checker): closed afterwards, so the test database can be dropped."""
    yield
    for pool in (exporter._reader, core_views._database_checker):
        pool.submit(lambda: connection.close()).result(timeout=10)


@pytest.fixture(autouse=True)
def broker_depths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests have no broker to ask (eager Celery); the live test reads the real one."""
    from apps.metrics import health

    monkeypatch.setattr(health, "queue_depths", lambda: {"celery": 3, "webhooks": 0})


@pytest.fixture
def token(settings: Any) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Client) -> dict[str, Any]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return {family.name: family for family in text_string_to_metric_families(response.text)}


# --- The endpoint ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_without_a_token_configured_the_endpoint_does_not_exist(
    client: Client, settings: Any
) -> None:
    # given no SPOOL_METRICS_TOKEN
    settings.METRICS_TOKEN = ""

    # when it is asked, even with a bearer token
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    # then it answers as for any path that does not exist
    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer", TOKEN],
)
def test_a_missing_or_wrong_token_is_refused(
    client: Client, token: str, authorization: str | None
) -> None:
    # when
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)

    # then 401, saying how to authenticate, and no metric in the body
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"spool_" not in response.content


@pytest.mark.django_db
def test_the_right_token_gets_the_text_format(client: Client, token: str) -> None:
    # when
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {token}")

    # then the Prometheus text format, with counters and the scrape-time readings
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name in ("spool_http_requests", "spool_sms_accepted", "spool_webhook_attempts"):
        assert families[name].type == "counter"
    assert families["spool_http_request_duration_seconds"].type == "histogram"
    assert families["spool_database_up"].samples[0].value == 1.0
    assert families["spool_redis_up"].samples[0].value == 1.0
    assert families["spool_scrape_complete"].samples[0].value == 1.0
    depths = {s.labels["queue"]: s.value for s in families["spool_celery_queue_length"].samples}
    assert depths == {"celery": 3, "webhooks": 0}


@pytest.mark.django_db
def test_openmetrics_when_the_scraper_asks_for_it(client: Client, token: str) -> None:
    response = client.get(
        "/metrics",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_ACCEPT="application/openmetrics-text; version=1.0.0",
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


# --- HTTP requests ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_requests_are_counted_by_url_pattern_method_and_status(acs: AcsClient) -> None:
    # given an identity
    raw_id = acs.call("POST", "/identities", {}).json()["identity"]["id"]
    labels = {"kind": "acs", "route": TOKEN_ROUTE, "method": "POST", "status": "200"}
    before = value("spool_http_requests_total", **labels)
    observed = value(
        "spool_http_request_duration_seconds_count", kind="acs", route=TOKEN_ROUTE, method="POST"
    )

    # when three tokens are issued
    for _ in range(3):
        response = acs.call(
            "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
        )
        assert response.status_code == 200

    # then the route is the pattern, not the identity's path, and each took some time
    assert value("spool_http_requests_total", **labels) == before + 3
    assert (
        value(
            "spool_http_request_duration_seconds_count",
            kind="acs",
            route=TOKEN_ROUTE,
            method="POST",
        )
        == observed + 3
    )


def _request_series() -> set[tuple[str, ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for family in REGISTRY.collect()
        if family.name == "spool_http_requests"
        for sample in family.samples
        if sample.name == "spool_http_requests_total"
    }


@pytest.mark.django_db
def test_random_paths_and_methods_add_no_series(client: Client, resource: Any) -> None:
    # given one request of each shape already counted
    client.get(f"/r/{resource.slug}/nothing-here")
    client.get(f"/nothing-{uuid.uuid4()}")
    client.generic("BREW", "/coffee")
    series = _request_series()

    # when a client sends many random paths and methods
    for _ in range(20):
        client.get(f"/r/{resource.slug}/{uuid.uuid4()}/{uuid.uuid4()}")
        client.get(f"/{uuid.uuid4()}")
        client.generic(uuid.uuid4().hex[:8].upper(), f"/{uuid.uuid4()}")

    # then no new series: unmatched paths share one route label, unknown methods are "other"
    assert _request_series() == series
    unrouted = {(d["kind"], d["route"], d["method"]) for d in map(dict, series)}
    assert ("web", exporter.UNROUTED, "other") in unrouted
    assert ("acs", exporter.UNROUTED, "GET") in unrouted


# --- SMS and webhooks ----------------------------------------------------------------------
@pytest.fixture
def sender(resource: Any, make_numbers: Any, settings: Any) -> str:
    settings.SMS_CARRIER = "loopback"
    settings.SMS_SEGMENTS_PER_SECOND = 1000.0
    carriers.reset()
    number = make_numbers(1)[0]
    number.status, number.owner = NumberStatus.OWNED, resource
    number.owned_sms = number.owned_calling = Capability.BOTH
    number.owned_assignment_type = AssignmentType.APPLICATION
    number.purchased_at = timezone.now()
    number.save()
    return str(number.number)


@pytest.mark.django_db
def test_sms_outcomes_are_counted_once_committed(
    resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    before = {
        name: value(name)
        for name in ("spool_sms_accepted_total", "spool_sms_submitted_total")
        + ("spool_sms_delivered_total",)
    }
    request = sms.SendRequest(
        sender, [sms.Recipient("+447700900001"), sms.Recipient("+447700900002")], "Hi"
    )

    # when two messages are accepted and the loopback carrier delivers them (eager Celery)
    with django_capture_on_commit_callbacks(execute=True):
        results = sms.send(resource, request)

    # then each step counted both
    assert all(r["successful"] for r in results)
    assert value("spool_sms_accepted_total") == before["spool_sms_accepted_total"] + 2
    assert value("spool_sms_submitted_total") == before["spool_sms_submitted_total"] + 2
    assert value("spool_sms_delivered_total") == before["spool_sms_delivered_total"] + 2


@pytest.mark.django_db
def test_a_rolled_back_send_counts_nothing(
    resource: Any, sender: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    from django.db import transaction

    before = value("spool_sms_accepted_total")

    # when the transaction around a send rolls back
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            sms.send(resource, sms.SendRequest(sender, [sms.Recipient("+447700900001")], "Hi"))
            raise RuntimeError("rolled back")

    # then
    assert value("spool_sms_accepted_total") == before


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.mark.django_db
def test_webhook_attempts_are_counted_by_outcome(
    resource: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    # given an active subscription whose receiver answers 500, then 400, then 200
    subscription = events.create_subscription(
        resource, name="hook", endpoint_url=receiver.url, event_types=None, schema=None
    )
    events.validate_subscription(subscription.pk)
    receiver.statuses = [500, 400, 200]
    before = {
        o: value("spool_webhook_attempts_total", outcome=o) for o in exporter.WEBHOOK_OUTCOMES
    }

    # when three events are published (eager Celery makes each first attempt at once)
    for n in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            events.publish_event(
                resource,
                sms.SMS_RECEIVED,
                subject="/phonenumber/15555550199",
                data={"MessageId": f"m{n}", "From": "+1", "To": "+2", "Message": "hi"},
            )

    # then one attempt of each outcome
    states = sorted(EventDelivery.objects.values_list("state", flat=True))
    assert states == sorted(
        [DeliveryState.PENDING, DeliveryState.DEAD_LETTERED, DeliveryState.DELIVERED]
    )
    for outcome in exporter.WEBHOOK_OUTCOMES:
        assert value("spool_webhook_attempts_total", outcome=outcome) == before[outcome] + 1


# --- Read at scrape time -----------------------------------------------------------------------
@pytest.mark.django_db
def test_the_scrape_time_readings(resource: Any) -> None:
    # given two live group calls and an ended one
    now = timezone.now()
    for ended in (None, None, now):
        Call.objects.create(
            resource=resource,
            kind=CallKind.GROUP,
            group_id=uuid.uuid4(),
            caller_raw_id="8:acs:x",
            created_at=now,
            ended_at=ended,
        )

    # when the readings are taken (in this thread, so they see this test's rows)
    reading = exporter._read(database_up=True, redis_up=True)

    # then
    assert reading.calls_live == {"oneToOne": 0, "group": 2, "room": 0}
    assert reading.lag == {"webhooks": 0.0, "sms": 0.0}
    assert reading.workers_live == 0 and reading.heartbeat_age == float("inf")
    assert reading.queues == {"celery": 3, "webhooks": 0}
    assert reading.janus_up == {} and reading.janus_calls == {}  # none configured


@pytest.mark.django_db
def test_each_janus_server_s_health_and_calls_placed_on_it(
    resource: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.calls import janus_placement

    # given two Janus servers: a found down with a live call on it, b never checked (it is
    # tried at scrape time) with none
    a, b = "ws://10.0.0.1:8188", "ws://10.0.0.2:8188"
    settings.JANUS_SERVERS = [(a, 10), (b, 0)]
    now = timezone.now()
    Call.objects.create(resource=resource, caller_raw_id="8:acs:x", created_at=now, janus_server=a)
    janus_placement.record(a, False, "refused")
    monkeypatch.setattr(exporter, "_accepts", lambda url: url == b)

    # when the readings are taken
    reading = exporter._read(database_up=True, redis_up=True)

    # then each server has its own samples
    assert reading.janus_up == {a: False, b: True}
    assert reading.janus_calls == {a: 1, b: 0}


@pytest.mark.django_db
def test_a_dependency_that_does_not_answer_in_time_is_reported_not_waited_for(
    client: Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given readings that hang
    import threading

    release = threading.Event()
    monkeypatch.setattr(exporter, "SCRAPE_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(
        exporter, "_read_in_thread", lambda *args: release.wait(10) and exporter.Reading()
    )
    try:
        # when scraped
        families = scrape(client)
    finally:
        release.set()

    # then the scrape says it is incomplete, and still has the up checks and the counters
    assert families["spool_scrape_complete"].samples[0].value == 0.0
    assert families["spool_database_up"].samples[0].value == 1.0
    assert "spool_http_requests" in families


# --- Several processes --------------------------------------------------------------------
CHILD = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django
django.setup()
from apps.metrics import exporter
exporter.SMS_ACCEPTED.inc(int(sys.argv[1]))
exporter.WEBSOCKETS_OPEN.inc(int(sys.argv[1]))
exporter.observe_request("acs", "sms", "POST", 202, 0.01)
print(os.getpid())
"""


@pytest.mark.django_db
def test_processes_are_summed_and_a_dead_ones_sockets_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two processes that counted into one folder
    folder = exporter.reset_multiprocess_dir(tmp_path / "prometheus")
    (folder / "counter_999999.db").write_bytes(b"stale")  # an earlier run's: removed
    folder = exporter.reset_multiprocess_dir(folder)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    pids = [
        int(
            subprocess.run(
                [sys.executable, "-c", CHILD, str(n)],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
        )
        for n in (2, 3)
    ]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))

    # when scraped, then their counts add up
    def scraped() -> dict[str, Any]:
        body, _ = exporter.render()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
        }

    samples = scraped()
    assert samples[("spool_sms_accepted_total", ())] == 5
    assert samples[("spool_websockets_open", ())] == 5
    route = (("kind", "acs"), ("method", "POST"), ("route", "sms"), ("status", "202"))
    assert samples[("spool_http_requests_total", route)] == 2

    # when one is marked dead (serve does so when it restarts it)
    exporter.mark_process_dead(pids[1])

    # then its sockets are gone and its counts stay
    samples = scraped()
    assert samples[("spool_websockets_open", ())] == 2
    assert samples[("spool_sms_accepted_total", ())] == 5


# --- Logs -----------------------------------------------------------------------------------
def test_json_logs_put_a_request_lines_fields_at_the_top(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given the root handler of SPOOL_LOG_FORMAT=json
    from apps.core.request_log import _JsonLine

    config = json.loads(json.dumps(django_settings.LOGGING))
    config["handlers"]["console"]["formatter"] = "json"
    config["handlers"]["console"]["stream"] = "ext://sys.stdout"
    logging.config.dictConfig(config)
    try:
        # when a request line and a plain message are logged
        logging.getLogger("spool.requests").info(_JsonLine({"route": "sms", "status": 202}))
        logging.getLogger("apps.sms").warning("carrier %s slow", "smpp")
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        logging.config.dictConfig(django_settings.LOGGING)

    # then one JSON object per line
    request, warning = lines
    assert request["route"] == "sms" and request["status"] == 202
    assert request["logger"] == "spool.requests" and request["level"] == "INFO"
    assert warning["message"] == "carrier smpp slow" and warning["level"] == "WARNING"
    assert re.match(r"\d{4}-\d\d-\d\dT", warning["time"])


def test_request_lines_stay_json_text_in_plain_logs() -> None:
    from apps.core.request_log import _JsonLine

    record = logging.LogRecord(
        "spool.requests", logging.INFO, "", 0, _JsonLine({"a": 1}), None, None
    )
    assert json.loads(record.getMessage()) == {"a": 1}


# --- docker/prometheus ---------------------------------------------------------------------------
def _exported_names() -> set[str]:
    names = set(exporter.SCRAPED)
    for family in REGISTRY.collect():
        if family.name.startswith("spool_"):
            names |= {sample.name for sample in family.samples}
            names.add(family.name)
    return names


def test_every_alert_and_chart_names_metrics_the_exporter_defines() -> None:
    # given
    rules = yaml.safe_load((ROOT / "docker/prometheus/alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "docker/grafana/spool-dashboard.json").read_text())
    exprs += [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    names = _exported_names()

    # then every spool_ metric they name exists
    used = {name for expr in exprs for name in re.findall(r"\bspool_[a-z_]+", expr)}
    assert used and used <= names, used - names
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "SpoolQueueBacklog",
        "SpoolHighErrorRate",
        "SpoolWorkerHeartbeatMissing",
        "SpoolRedisDown",
        "SpoolDatabaseDown",
    } <= alerts


@pytest.mark.skipif(
    not shutil.which("promtool"), reason="promtool not installed (Debian: prometheus)"
)
def test_the_rules_and_scrape_config_pass_promtool(tmp_path: Path) -> None:
    # given the config beside a token file, as an operator lays them out
    folder = ROOT / "docker/prometheus"
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(folder / name, tmp_path / name)
    (tmp_path / "spool-metrics-token").write_text(TOKEN)

    # then the config and rules are valid and the rules' own tests pass
    for args in (
        ["check", "config", str(tmp_path / "prometheus.yml")],
        ["test", "rules", str(folder / "alerts_test.yml")],
    ):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr

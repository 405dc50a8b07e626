"""Prometheus metrics: every `spool_*` metric the platform exports, defined here and nowhere
else, and what `GET /metrics` renders (apps/metrics/views.py; docs/operations.md "Prometheus").

Two kinds of metric:

- Counted as work happens, in whichever process does it: HTTP requests (the request-log
  middleware), identity sockets open (the identity consumer), SMS outcomes (apps/sms),
  webhook attempts (apps/events/dispatch.py). Under `manage.py serve` every web process and
  Celery worker writes its samples to memory-mapped files in $PROMETHEUS_MULTIPROC_DIR (a fresh
  folder per run, `reset_multiprocess_dir`), and a scrape of any web process sums them all
  (prometheus_client's multiprocess mode). Without that variable (unit tests, a lone process)
  they live in this process's memory.
- Read at scrape time (`PlatformCollector`): database and Redis up, Celery queue depths,
  delivery lag, worker heartbeats, calls live, each Janus server's health and the calls placed
  on it. Each scrape does this once,
  in a thread of its own, within SCRAPE_TIMEOUT_SECONDS; a dependency that does not answer is
  reported as down rather than holding the scrape.

Labels are bounded by design: a route is the URL pattern that matched (never the path), an
unknown method is `other`, every other label takes values from fixed lists. A client sending
random paths, methods or ids adds no series.

At import this module needs only Django and prometheus_client, so any app, the lowest
included, may count through it; the scrape-time readers import the models they read when
they run.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_TIMEOUT_SECONDS = 2.0
UNROUTED = "(no such route)"  # the route label of a request no URL pattern matched

# --- Counted as it happens -------------------------------------------------------------------
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_REQUESTS = Counter(
    "spool_http_requests",
    "HTTP requests answered, by kind (acs, management, web), URL pattern, method and status.",
    ["kind", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "spool_http_request_duration_seconds",
    "Time to answer an HTTP request (Django's middleware below the request log and the view).",
    ["kind", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBSOCKETS_OPEN = Gauge(
    "spool_websockets_open",
    "Identity sockets (/ws/: chat and calling clients) authenticated and open.",
    multiprocess_mode="livesum",
)
SMS_ACCEPTED = Counter(
    "spool_sms_accepted", "Outbound SMS accepted and queued for delivery (one per recipient)."
)
SMS_SUBMITTED = Counter("spool_sms_submitted", "Outbound SMS handed to the carrier.")
SMS_DELIVERED = Counter(
    "spool_sms_delivered", "Outbound SMS delivered (the carrier's answer or receipt)."
)
SMS_FAILURE_REASONS = ("opted_out", "refused", "expired", "receipt")
SMS_FAILED = Counter(
    "spool_sms_failed",
    "Outbound SMS failed: the recipient opted out, the carrier refused it, retries ran out "
    "(expired) or a receipt said not delivered.",
    ["reason"],
)
SMS_RETRIED = Counter(
    "spool_sms_retried", "Carrier submissions that failed for now and were scheduled again."
)
SMS_RECEIVED = Counter("spool_sms_received", "Inbound SMS received for a number here.")
WEBHOOK_OUTCOMES = ("succeeded", "failed", "dead_lettered")
WEBHOOK_ATTEMPTS = Counter(
    "spool_webhook_attempts",
    "Webhook delivery attempts: succeeded, failed (retried later) or dead-lettered (given up).",
    ["outcome"],
)
WEBHOOK_EXPIRED = Counter(
    "spool_webhook_expired",
    "Webhook deliveries dead-lettered without an attempt: the event's time to live ran out.",
)

# Known label values start at 0, so rates and alerts see a series before its first event.
for _reason in SMS_FAILURE_REASONS:
    SMS_FAILED.labels(_reason)
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_ATTEMPTS.labels(_outcome)

# The scrape-time metrics (PlatformCollector), named here for docs/ and the alert-rule test.
SCRAPED = {
    "spool_database_up": "1 if the database answered SELECT 1 within the scrape's deadline.",
    "spool_redis_up": "1 if Redis (cache, channel layer, broker) answered a write.",
    "spool_janus_up": (
        "1 if a Janus server answered its last health check (not checked lately: if its "
        "WebSocket API accepted a connection), by server."
    ),
    "spool_janus_calls": "Live calls placed on a Janus server, by server.",
    "spool_sip_edge_up": "1 if the SIP edge (Kamailio) answered the media process's last OPTIONS.",
    "spool_rtpengine_up": "1 if rtpengine answered the media process's last ng ping.",
    "spool_turn_up": "1 if the TURN server (coturn) answered the media process's last STUN request.",
    "spool_celery_queue_length": "Messages waiting in a Celery queue.",
    "spool_delivery_lag_seconds": "How long the oldest due webhook or queued SMS has waited.",
    "spool_workers_live": "Celery workers with a heartbeat in the last two minutes.",
    "spool_worker_heartbeat_age_seconds": "Seconds since the newest worker heartbeat.",
    "spool_calls_live": "Calls not ended, by kind.",
    "spool_scrape_complete": "1 if every scrape-time reading finished within its deadline.",
}


# The labelled children of each (kind, route, method, status) seen: as bounded as the labels.
_request_children: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(kind: str, route: str, method: str, status: int, seconds: float) -> None:
    """One answered request (the request-log middleware calls this for every request): a
    counter and a histogram, ~3 us in multiprocess mode (looking children up by their labels
    in prometheus_client would double that)."""
    if method not in HTTP_METHODS:
        method = "other"
    key = (kind, route, method, status)
    children = _request_children.get(key)
    if children is None:
        children = _request_children[key] = (
            HTTP_REQUESTS.labels(kind, route, method, str(status)),
            HTTP_DURATION.labels(kind, route, method),
        )
    children[0].inc()
    children[1].observe(seconds)


def count_after_commit(counter: Counter, amount: float = 1) -> None:
    """Add `amount` once the current transaction commits (at once outside one), so work that
    rolls back is never counted."""
    if amount:
        transaction.on_commit(partial(counter.inc, amount))


# --- Multiprocess mode ----------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def reset_multiprocess_dir(folder: Path) -> Path:
    """An empty folder for this run's samples (`serve` calls this before its children start).
    Samples of an earlier run would be summed with this one's: their files are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    return folder


def mark_process_dead(pid: int) -> None:
    """Forget a dead process's live gauges (its sockets are closed); its counters stay summed."""
    folder = multiprocess_dir()
    if folder:
        multiprocess.mark_process_dead(pid, folder)


# --- Rendering a scrape -------------------------------------------------------------------------
class _ThisProcess:
    """This process's own registry (no multiprocess folder): its counters, plus the process
    and platform collectors that prometheus_client registers by default."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def render(accept: str = "") -> tuple[bytes, str]:
    """The scrape's body and content type (OpenMetrics when the scraper asks for it)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(PlatformCollector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


# --- Read at scrape time --------------------------------------------------------------------------
@dataclass
class Reading:
    """What the scrape-time checks found (None: not known, the sample is left out)."""

    database_up: bool = False
    redis_up: bool = False
    janus_up: dict[str, bool] = field(default_factory=dict)  # by server URL
    janus_calls: dict[str, int] = field(default_factory=dict)
    engines: dict[str, bool] = field(default_factory=dict)  # SIP edge, rtpengine, TURN, if checked
    queues: dict[str, int | None] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)
    workers_live: int | None = None
    heartbeat_age: float | None = None
    calls_live: dict[str, int] = field(default_factory=dict)
    complete: bool = True


_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-scrape")
_reading: Future[Reading] | None = None
_lock = threading.Lock()


class PlatformCollector:
    """The scrape-time metrics. Registered on the registry each scrape builds (prometheus_client
    requires that in multiprocess mode), so its readings are taken once per scrape."""

    def collect(self) -> Iterator[Metric]:
        reading = read_platform()
        yield _gauge("spool_database_up", float(reading.database_up))
        yield _gauge("spool_redis_up", float(reading.redis_up))
        yield _gauge(
            "spool_janus_up",
            labels=["server"],
            samples=[([url], float(up)) for url, up in reading.janus_up.items()],
        )
        yield _gauge(
            "spool_janus_calls",
            labels=["server"],
            samples=[([url], calls) for url, calls in reading.janus_calls.items()],
        )
        for engine, up in reading.engines.items():
            yield _gauge(f"spool_{engine}_up", float(up))
        yield _gauge(
            "spool_celery_queue_length",
            labels=["queue"],
            samples=[([queue], depth) for queue, depth in reading.queues.items()],
        )
        yield _gauge(
            "spool_delivery_lag_seconds",
            labels=["kind"],
            samples=[([kind], seconds) for kind, seconds in reading.lag.items()],
        )
        if reading.workers_live is not None:
            yield _gauge("spool_workers_live", float(reading.workers_live))
        if reading.heartbeat_age is not None:
            yield _gauge("spool_worker_heartbeat_age_seconds", reading.heartbeat_age)
        yield _gauge(
            "spool_calls_live",
            labels=["kind"],
            samples=[([kind], count) for kind, count in reading.calls_live.items()],
        )
        yield _gauge("spool_scrape_complete", float(reading.complete))


def _gauge(
    name: str,
    value: float | None = None,
    *,
    labels: list[str] | None = None,
    samples: Iterable[tuple[list[str], float | None]] = (),
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, SCRAPED[name], value=value, labels=labels)
    for label_values, sample in samples:
        if sample is not None:
            family.add_metric(label_values, sample)
    return family


def read_platform() -> Reading:
    """Database and Redis first, with /healthz's own checks (each bounded by its timeout),
    then the rest in the scrape thread, within what is left of SCRAPE_TIMEOUT_SECONDS."""
    from apps.core.views import dependency_checks

    deadline = time.monotonic() + SCRAPE_TIMEOUT_SECONDS
    checks, _workers = dependency_checks()
    database_up, redis_up = checks["database"] == "ok", checks["redis"] == "ok"
    future = _start_reading(database_up, redis_up)
    try:
        reading = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        reading = Reading(complete=False)
    except Exception:
        logger.exception("the scrape-time metrics could not be read")
        reading = Reading(complete=False)
    reading.database_up, reading.redis_up = database_up, redis_up
    return reading


def _start_reading(database_up: bool, redis_up: bool) -> Future[Reading]:
    """The reading still running from an earlier scrape (a hung dependency), else a new one:
    scrapes never pile up threads behind a dependency that does not answer."""
    global _reading
    with _lock:
        if _reading is None or _reading.done():
            _reading = _reader.submit(_read_in_thread, database_up, redis_up)
        return _reading


def _read_in_thread(database_up: bool, redis_up: bool) -> Reading:
    # The scrape thread keeps its database connection between scrapes, as a request thread.
    connection.close_if_unusable_or_obsolete()
    return _read(database_up, redis_up)


def _read(database_up: bool, redis_up: bool) -> Reading:
    from apps.metrics import engines, health

    reading = Reading()
    if redis_up:  # (kombu retries a broker that refuses, for long)
        reading.queues = _guarded(health.queue_depths, {})
        reading.engines = _guarded(engines.health, {})
    if database_up:
        reading.lag = _guarded(health.delivery_lag, {})
        workers = _guarded(health.workers, None)
        if workers is not None:
            reading.workers_live = sum(1 for worker in workers if worker["live"])
            ages = [float(worker["seconds_ago"]) for worker in workers]
            # No heartbeat for a day (or ever) is as bad as it gets for an alert.
            reading.heartbeat_age = min(ages) if ages else math.inf
        reading.calls_live = _guarded(_calls_live, {})
    reading.janus_up, reading.janus_calls = _janus(database_up, redis_up)
    return reading


def _guarded(read: Callable[[], Any], fallback: Any) -> Any:
    try:
        return read()
    except Exception:
        logger.warning("a scrape-time metric could not be read", exc_info=True)
        connection.close()  # a broken connection is not reused by the next scrape
        return fallback


def _calls_live() -> dict[str, int]:
    from django.db.models import Count

    from apps.calls.models import Call, CallKind

    counts = {kind.value: 0 for kind in CallKind}
    for row in Call.objects.filter(ended_at__isnull=True).values("kind").annotate(n=Count("pk")):
        counts[row["kind"]] = row["n"]
    return counts


def _janus(database_up: bool, redis_up: bool) -> tuple[dict[str, bool], dict[str, int]]:
    """Each configured Janus server's health as placement sees it (apps/calls/janus_placement.py:
    the media process's last check, in the cache) and the live calls placed on it. A server not
    checked lately is tried now."""
    from apps.calls import janus_placement

    urls = [server.url for server in janus_placement.all_servers()]
    recorded: dict[str, bool | None] = dict.fromkeys(urls)
    if redis_up:
        recorded = _guarded(lambda: janus_placement.health(urls), recorded)
    up = {url: _accepts(url) if found is None else found for url, found in recorded.items()}
    live = _guarded(janus_placement.live_calls, None) if database_up else None
    calls = {url: live.get(url, 0) for url in urls} if live is not None else {}
    return up, calls


def _accepts(url: str) -> bool:
    """Whether a Janus WebSocket API accepts a connection (the opening handshake only: the
    Janus protocol itself is spoken by its drivers)."""
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    try:
        with connect(url, subprotocols=[Subprotocol("janus-protocol")], open_timeout=1.0):
            return True
    except Exception:
        return False

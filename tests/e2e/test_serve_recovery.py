"""The private Redis killed (-9) under load: `serve` restarts it, the platform heals by itself
and nothing accepted is lost. A real SMSC peer over SMPP counts what reaches it."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import websockets
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.phonenumbers import (
    PhoneNumberAssignmentType,
    PhoneNumberCapabilities,
    PhoneNumberCapabilityType,
    PhoneNumbersClient,
    PhoneNumberType,
)
from azure.communication.sms import SmsClient

from tests.conftest import ROOT, LiveSpool, free_port, start_spool, stop_spool
from tests.events.conftest import Receiver

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        bool(os.environ.get("REDIS_URL")),
        reason="with REDIS_URL set, serve starts no private Redis to kill",
    ),
]

PER_REQUEST = 5  # recipients per SDK call
LEASE_SECONDS = 5  # an SMS claim, and how long an SMS whose drain was not queued waits
PASSWORD = "correct horse battery"


@dataclass
class Platform:
    live: LiveSpool
    smsc_log: Path
    connection: str
    sender: str
    recipients: Iterator[str] = field(
        default_factory=lambda: (f"+4477009{n:05d}" for n in range(100_000))
    )
    accepted: list[str] = field(default_factory=list)  # by every test of the module

    def sms(self) -> SmsClient:
        # No retries: a failed request must show as one, not be hidden by the SDK.
        return SmsClient.from_connection_string(
            self.connection, connection_verify=self.live.cert, retry_total=0
        )

    def identities(self) -> CommunicationIdentityClient:
        return CommunicationIdentityClient.from_connection_string(
            self.connection, connection_verify=self.live.cert
        )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    port = free_port()
    log = tmp_path_factory.mktemp("smsc") / "smsc.jsonl"
    smsc = subprocess.Popen(
        [sys.executable, "-m", "tests.sms.smpp_peer", "--port", str(port), "--log", str(log),
         "--resp-delay", "0.003"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert smsc.stdout is not None and "listening" in smsc.stdout.readline()
        live, cleanups = start_spool(
            {
                "SPOOL_SMS_CARRIER": "smpp",
                "SPOOL_SMPP_PORT": str(port),
                "SPOOL_SMS_SEGMENTS_PER_SECOND": "100000",
                "SPOOL_SMS_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
                "SPOOL_SMS_SWEEP_SECONDS": "1",
                "SPOOL_EVENT_SWEEP_SECONDS": "1",
                "SPOOL_JOB_SWEEP_SECONDS": "1",
                "SPOOL_NUMBER_JOB_LEASE_SECONDS": "5",
                "SPOOL_QUOTA_SMS": "1000000/30",
            }
        )
        try:
            connection = live.create_resource()
            yield Platform(live, log, connection, live.give_number(connection))
        finally:
            stop_spool(live, cleanups)
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(timeout=10)


# --- Looking at the platform --------------------------------------------------------------
def _redis_pid(live: LiveSpool) -> int | None:
    assert live.process is not None
    for child in psutil.Process(live.process.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "redis-server" in child.exe():
                return child.pid
        except psutil.Error:
            pass  # exited meanwhile
    return None


def _kill_redis(live: LiveSpool) -> tuple[int, float]:
    pid = _redis_pid(live)
    assert pid is not None, "no private Redis is running"
    os.kill(pid, signal.SIGKILL)
    return pid, time.monotonic()


def _wait_for_new_redis(live: LiveSpool, old: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = _redis_pid(live)
        if pid not in (None, old):
            return pid
        time.sleep(0.02)
    raise AssertionError("serve did not restart the private Redis")


def _serve_log(live: LiveSpool) -> str:
    return (live.data_dir / "serve.log").read_text(errors="replace")


def _announced_delay(live: LiveSpool, deaths_before: int, timeout: float = 5) -> float:
    """The delay serve announced for the Redis death after the first `deaths_before`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delays = re.findall(
            r"redis was killed by SIGKILL after .*?restarting it in ([\d.]+) s", _serve_log(live)
        )
        if len(delays) > deaths_before:
            return float(delays[deaths_before])
        time.sleep(0.02)
    raise AssertionError("serve did not report the Redis death:\n" + _serve_log(live)[-3000:])


def _deaths(live: LiveSpool) -> int:
    return len(re.findall(r"redis was killed by SIGKILL", _serve_log(live)))


def _health(live: LiveSpool) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{live.http_url}/healthz", timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body), time.monotonic() - started


async def _open_socket(live: LiveSpool, token: str) -> tuple[Any, Any]:
    """("hello", socket) or ("closed", (code, reason)) or ("status", http status)."""
    url = f"wss://127.0.0.1:{live.https_port}/ws/?access_token={token}"
    try:
        socket = await websockets.connect(url, ssl=live.ssl_context(), open_timeout=10)
    except websockets.InvalidStatus as error:
        return "status", error.response.status_code
    try:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
    except websockets.ConnectionClosed as closed:
        return "closed", (
            closed.rcvd.code if closed.rcvd else None,
            closed.rcvd.reason if closed.rcvd else "",
        )
    assert frame["type"] == "hello", frame
    return "hello", socket


async def _try_socket(live: LiveSpool, token: str) -> tuple[str, Any]:
    """Open a socket and close it again: ("hello", None), or how it was refused."""
    kind, outcome = await _open_socket(live, token)
    if kind != "hello":
        return kind, outcome
    await outcome.close()
    return "hello", None


def _submits(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _outbound(live: LiveSpool) -> list[dict[str, Any]]:
    script = (
        "import json; from apps.sms.models import SmsMessage; print(json.dumps(list("
        "SmsMessage.objects.filter(direction='outbound').values("
        "'recipient', 'status', 'possible_duplicate'))))"
    )
    output = live.manage("shell", "-c", script).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _assert_all_delivered_once(platform: Platform, timeout: float) -> float:
    """Every message the platform accepted so far ends delivered and reached the SMSC exactly
    once, and no other message exists (none from a refused request). Returns how long the
    last of them took to arrive, from now."""
    started = time.monotonic()
    accepted = set(platform.accepted)
    while True:
        messages = _outbound(platform.live)
        delivered = {m["recipient"] for m in messages if m["status"] == "delivered"}
        if accepted <= delivered or time.monotonic() - started > timeout:
            break
        time.sleep(0.3)
    took = time.monotonic() - started
    missing = sorted(accepted - delivered)
    assert not missing, f"{len(missing)} accepted messages not delivered, e.g. {missing[:5]}"
    assert {m["recipient"] for m in messages} == accepted, "a message nobody was told of"
    assert len(messages) == len(accepted), "one recipient, one message"
    reached = collections.Counter(
        s["destination"] for s in _submits(platform.smsc_log) if s["message_id"]
    )
    assert set(reached) == {r.lstrip("+") for r in accepted}
    twice = {destination: count for destination, count in reached.items() if count > 1}
    assert not twice, f"sent to the SMSC more than once: {twice}"
    return took


class SmsLoad(threading.Thread):
    """Sends SMS through the SDK, PER_REQUEST fresh recipients a call, until stopped;
    records what was accepted (202 per recipient) and every failure."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(daemon=True)
        self.platform = platform
        self.client = platform.sms()
        self.stopping = threading.Event()
        self.accepted_at: list[tuple[float, str]] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            recipients = [next(self.platform.recipients) for _ in range(PER_REQUEST)]
            try:
                results = self.client.send(
                    from_=self.platform.sender, to=recipients, message="Under load"
                )
            except Exception as error:
                self.failures.append(repr(error)[:300])
                continue
            for result in results:
                if result.successful and result.http_status_code == 202:
                    self.accepted_at.append((time.monotonic(), result.to))
                else:
                    self.failures.append(f"{result.to}: {result.http_status_code}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        self.platform.accepted.extend(to for _, to in self.accepted_at)


class HealthPoller(threading.Thread):
    def __init__(self, live: LiveSpool, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.live, self.every = live, every
        self.stopping = threading.Event()
        self.samples: list[tuple[float, int, dict[str, Any], float]] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            at = time.monotonic()
            try:
                status, body, took = _health(self.live)
            except Exception as error:  # recorded: the assertions say what was wrong
                status, body, took = 0, {"error": repr(error)}, time.monotonic() - at
            self.samples.append((at, status, body, took))
            time.sleep(self.every)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


# --- The attacks --------------------------------------------------------------------------
def test_redis_killed_under_load_is_restarted_and_nothing_accepted_is_lost(
    platform: Platform,
) -> None:
    # given SMS flowing through the SDK, a socket open, /healthz polled 20 times a second
    live = platform.live
    identities = platform.identities()
    watcher, watcher_token = identities.create_user_and_token([CommunicationTokenScope.CHAT])
    _, caller_token = identities.create_user_and_token([CommunicationTokenScope.CHAT])
    load, health = SmsLoad(platform), HealthPoller(live)

    async def scenario() -> dict[str, Any]:
        kind, watching = await _open_socket(live, watcher_token.token)
        assert kind == "hello"
        load.start()
        health.start()
        while len(load.accepted_at) < 50:
            await asyncio.sleep(0.05)

        # when the private Redis is killed
        old, killed_at = _kill_redis(live)
        attempts: list[tuple[str, Any]] = []
        new = None
        healed = False
        while not healed and time.monotonic() - killed_at < 15:
            # sockets keep arriving meanwhile
            attempts.append(await _try_socket(live, caller_token.token))
            pid = _redis_pid(live)
            new = pid if pid not in (None, old) else new
            healed = bool(new) and any(
                s[0] > killed_at and s[1] == 200 for s in list(health.samples)
            )
            await asyncio.sleep(0.05)
        if healed:
            await asyncio.sleep(1.5)  # load on a healed platform
        load.stop()
        health.stop()
        assert new, "serve did not restart the private Redis within 15 s"
        assert healed, "healthz did not say ok again within 15 s"

        # the socket opened before the kill still gets what is pushed to its identity
        await asyncio.get_running_loop().run_in_executor(None, identities.revoke_tokens, watcher)
        pushed = json.loads(await asyncio.wait_for(watching.recv(), 5))
        fresh = await _try_socket(live, caller_token.token)
        return {
            "old": old,
            "new": new,
            "killed_at": killed_at,
            "attempts": attempts,
            "pushed": pushed,
            "fresh": fresh,
        }

    outcome = asyncio.run(scenario())

    # then serve restarted Redis, and said so
    assert outcome["new"] not in (None, outcome["old"]), "Redis was not restarted"
    log = _serve_log(live)
    assert "redis was killed by SIGKILL" in log and "redis restarted" in log
    # /healthz said Redis was down while it was, quickly, and ok after
    killed_at = outcome["killed_at"]
    after = [s for s in health.samples if s[0] >= killed_at]
    down = [s for s in after if s[1] == 503]
    assert down, "healthz never reported the outage"
    wrong = [s for s in down if s[2]["down"] != ["redis"] or s[2]["database"] != "ok"]
    assert not wrong, wrong
    assert all(s[2]["redis"].startswith("error: ") for s in down)
    assert max(s[3] for s in health.samples) < 2.0, "a health check was slow"
    healed_at = next(s[0] for s in after if s[1] == 200 and s[0] > down[0][0])
    assert after[-1][1] == 200
    # sockets never got a 500: refused cleanly while Redis was down, accepted again after
    assert not [a for a in outcome["attempts"] if a[0] == "status"], outcome["attempts"]
    refused = [a for a in outcome["attempts"] if a[0] == "closed"]
    assert all(a[1][0] == 1013 for a in refused), refused
    assert outcome["fresh"] == ("hello", None)
    assert outcome["pushed"]["code"] == "InvalidToken"
    # and every SMS accepted, before, during and after, reached the SMSC exactly once
    assert not load.failures, load.failures[:5]
    during = [to for at, to in load.accepted_at if at >= killed_at and at <= healed_at]
    took = _assert_all_delivered_once(platform, timeout=60)
    print(
        f"\nRedis killed under load: healthz ok again after {healed_at - killed_at:.2f} s; "
        f"{len(load.accepted_at)} SMS accepted ({len(during)} during the outage), all "
        f"delivered {took:.1f} s after the load stopped; "
        f"sockets: {collections.Counter(a[0] for a in outcome['attempts'])}"
    )


def _long_outage(live: LiveSpool, at_least: float) -> tuple[int, float]:
    """Kill Redis each time serve restarts it until serve announces a restart delay of
    `at_least` seconds (its backoff grows with quick deaths); returns the last pid killed and
    when serve will start the next."""
    for _ in range(6):
        deaths = _deaths(live)
        old, killed_at = _kill_redis(live)
        delay = _announced_delay(live, deaths)
        if delay >= at_least:
            return old, killed_at + delay
        _wait_for_new_redis(live, old)
    raise AssertionError("serve's restart delay did not grow")


def test_while_redis_stays_down_health_and_sockets_say_so_and_accepted_sms_waits(
    platform: Platform,
) -> None:
    # given Redis killed each time it comes back, until serve waits 2 s before the next start
    live = platform.live
    _, token = platform.identities().create_user_and_token([CommunicationTokenScope.CHAT])
    old, restart_at = _long_outage(live, at_least=2.0)

    # when, during the outage, /healthz is asked, a socket opens and an SMS is sent
    status, body, took = _health(live)
    kind, outcome = asyncio.run(_try_socket(live, token.token))
    [result] = platform.sms().send(
        from_=platform.sender, to=[next(platform.recipients)], message="Down"
    )
    assert time.monotonic() < restart_at, "the outage ended before the checks: nothing was tested"

    # then healthz answers at once that Redis is down
    assert status == 503 and body["status"] == "degraded" and body["down"] == ["redis"], body
    assert took < 1.0
    assert body["database"] == "ok"
    # the socket is closed with "try again later" and a reason, not failed with a 500
    assert kind == "closed", outcome
    code, reason = outcome
    assert code == 1013 and "unavailable" in reason.lower()
    # the SMS is accepted (the database holds it)
    assert result.successful and result.http_status_code == 202
    platform.accepted.append(result.to)

    # and once serve has restarted Redis, everything works again by itself: beat's sweep
    # (no new request asks for a drain) hands the waiting SMS to the worker
    _wait_for_new_redis(live, old)
    deadline = time.monotonic() + 10
    while _health(live)[0] != 200:
        assert time.monotonic() < deadline, "healthz stayed degraded"
        time.sleep(0.1)
    assert asyncio.run(_try_socket(live, token.token)) == ("hello", None)
    _assert_all_delivered_once(platform, timeout=LEASE_SECONDS + 20)


def test_a_purchase_and_a_webhook_accepted_while_redis_is_down_complete(
    platform: Platform,
) -> None:
    # given a number on hold, and a webhook subscription of another resource
    live = platform.live
    live.manage("seed_numbers", "--country", "US", "--count", "3")
    numbers = PhoneNumbersClient.from_connection_string(
        platform.connection, connection_verify=live.cert, retry_total=0
    )
    both = PhoneNumberCapabilityType.INBOUND_OUTBOUND
    search = numbers.begin_search_available_phone_numbers(
        "US",
        PhoneNumberType.GEOGRAPHIC,
        PhoneNumberAssignmentType.APPLICATION,
        PhoneNumberCapabilities(calling=both, sms=both),
        quantity=1,
        polling_interval=0.2,
    ).result()
    receiver = Receiver()
    receiver.start()
    try:
        script = (
            "import time\n"
            "from django.contrib.auth.models import User\n"
            "from apps.accounts import services\n"
            "from apps.events import services as events\n"
            "from apps.events.models import EventSubscription\n"
            f"user = User.objects.create_user('recovery', password='{PASSWORD}')\n"
            "resource = services.create_resource('Recovery', owner=user)\n"
            f"s = events.create_subscription(resource, name='recovery', endpoint_url='{receiver.url}')\n"
            "while EventSubscription.objects.get(pk=s.pk).state != 'active': time.sleep(0.1)\n"
            "print(resource.slug, s.pk)\n"
        )
        slug, subscription = live.manage("shell", "-c", script).stdout.split()[-2:]
        api = requests.Session()
        api.auth = ("recovery", PASSWORD)
        base = f"{live.http_url}/api/v1/resources/{slug}"

        # when Redis is down while the purchase is asked for and the webhook test-fired
        # long enough for both requests, each of which waits ~1 s on the broker it cannot reach
        old, restart_at = _long_outage(live, at_least=4.0)
        purchase = numbers.begin_purchase_phone_numbers(search.search_id, polling_interval=0.2)
        fired = api.post(f"{base}/event-subscriptions/{subscription}/test/")
        assert time.monotonic() < restart_at, "the outage ended before the requests"
        assert fired.status_code == 202

        # then both complete soon after serve restarts Redis
        _wait_for_new_redis(live, old)
        purchase.result(timeout=20)
        deadline = time.monotonic() + 20
        while not receiver.notifications and time.monotonic() < deadline:
            time.sleep(0.2)
        assert receiver.notifications, "the webhook accepted during the outage never came"
    finally:
        receiver.stop()

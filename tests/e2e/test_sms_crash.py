"""Nothing accepted is lost: a worker killed (-9) in the middle of a 1,000-message batch,
with a real SMSC peer over SMPP counting what reaches it."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from azure.communication.sms import SmsClient

from apps.sms import delivery
from tests.conftest import ROOT, LiveSpool, free_port, start_spool, stop_spool

pytestmark = pytest.mark.e2e

MESSAGES = 1000


def _submits(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _messages(live: LiveSpool) -> list[dict[str, Any]]:
    script = (
        "import json; from apps.sms.models import SmsMessage; print(json.dumps(list("
        "SmsMessage.objects.filter(direction='outbound').values("
        "'recipient', 'status', 'possible_duplicate', 'submissions'))))"
    )
    output = live.manage("shell", "-c", script).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_worker_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    # given an SMSC that answers each submit after 3 ms, and a platform bound to it whose
    # sweeper re-queues a claim untouched for 3 s
    port = free_port()
    log = tmp_path / "smsc.jsonl"
    smsc = subprocess.Popen(
        [sys.executable, "-m", "tests.sms.smpp_peer", "--port", str(port), "--log", str(log),
         "--resp-delay", "0.003"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert smsc.stdout is not None and "listening" in smsc.stdout.readline()
    live, cleanups = start_spool(
        {
            "SPOOL_SMS_CARRIER": "smpp",
            "SPOOL_SMPP_PORT": str(port),
            "SPOOL_SMS_SEGMENTS_PER_SECOND": "100000",
            "SPOOL_SMS_JOB_LEASE_SECONDS": "3",
            "SPOOL_SMS_SWEEP_SECONDS": "1",
        }
    )
    try:
        connection = live.create_resource()
        sender = live.give_number(connection)
        client = SmsClient.from_connection_string(connection, connection_verify=live.cert)
        recipients = [f"+4477009{n:05d}" for n in range(MESSAGES)]

        # when 1,000 messages are accepted and the worker is killed while sending them
        for start in range(0, MESSAGES, 100):
            results = client.send(from_=sender, to=recipients[start : start + 100], message="Batch")
            assert all(result.successful for result in results)
        deadline = time.monotonic() + 60
        while len(_submits(log)) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.kill_worker() >= 1
        at_kill = len({s["destination"] for s in _submits(log)})
        assert at_kill < MESSAGES, "the batch finished before the kill: nothing was tested"

        # then serve restarts the worker, beat re-queues the lost claims, and every message
        # reaches the SMSC and ends delivered (its receipt came back)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            messages = _messages(live)
            if sum(m["status"] == "delivered" for m in messages) == MESSAGES:
                break
            time.sleep(1)
        statuses = collections.Counter(m["status"] for m in messages)
        assert statuses == {"delivered": MESSAGES}, statuses
        reached = collections.Counter(s["destination"] for s in _submits(log) if s["message_id"])
        assert set(reached) == {r.lstrip("+") for r in recipients}
        # and a message reached the SMSC twice only if it is marked as a possible duplicate
        marked = {m["recipient"].lstrip("+") for m in messages if m["possible_duplicate"]}
        twice = {destination for destination, count in reached.items() if count > 1}
        assert twice <= marked
        # Per worker process (concurrency 2), at most four chunks (apps/sms/delivery.py,
        # SUBMIT_CHUNK): two the carrier took, the answers gathered for the next recording and
        # the recording not committed yet. Under load the kill can find them all.
        in_flight = delivery.SUBMIT_CHUNK * 4 * 2
        assert len(marked) <= in_flight, "more marked than the chunks in flight when killed"
    finally:
        stop_spool(live, cleanups)
        smsc.send_signal(signal.SIGTERM)
        smsc.wait(timeout=10)

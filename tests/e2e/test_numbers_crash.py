"""Nothing accepted is lost: a worker killed (-9) in the middle of a purchase."""

from __future__ import annotations

import sqlite3
import time

import pytest
from azure.communication.phonenumbers import (
    PhoneNumberAssignmentType,
    PhoneNumberCapabilities,
    PhoneNumberCapabilityType,
    PhoneNumbersClient,
    PhoneNumberType,
)

from tests.conftest import LiveSpool, start_spool, stop_spool

pytestmark = pytest.mark.e2e


def _purchase_progress(live: LiveSpool) -> tuple[str, int, int]:
    query = (
        "SELECT status, progress_done, progress_total FROM numbers_numberoperation "
        "WHERE kind = 'purchase' ORDER BY created_at DESC LIMIT 1"
    )
    if "DATABASE_URL" in live.env:
        import psycopg

        with psycopg.connect(live.env["DATABASE_URL"]) as conn:
            row = conn.execute(query).fetchone()
    else:
        with sqlite3.connect(f"file:{live.data_dir / 'spool.sqlite3'}?mode=ro", uri=True) as conn:
            row = conn.execute(query).fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2])


def test_a_worker_killed_mid_purchase_loses_nothing() -> None:
    # given a platform whose carrier takes 50 ms a number, and whose sweeper re-queues a job
    # untouched for 3 s (checked every 2 s)
    live, cleanups = start_spool(
        {
            "SPOOL_NUMBER_CARRIER": "tests.slow_carrier",
            "SPOOL_NUMBER_JOB_LEASE_SECONDS": "3",
            "SPOOL_JOB_SWEEP_SECONDS": "2",
        }
    )
    try:
        live.manage("seed_numbers", "--country", "US", "--count", "60")
        client = PhoneNumbersClient.from_connection_string(
            live.create_resource(), connection_verify=live.cert
        )
        capabilities = PhoneNumberCapabilities(
            calling=PhoneNumberCapabilityType.INBOUND_OUTBOUND,
            sms=PhoneNumberCapabilityType.INBOUND_OUTBOUND,
        )
        search = client.begin_search_available_phone_numbers(
            "US",
            PhoneNumberType.GEOGRAPHIC,
            PhoneNumberAssignmentType.APPLICATION,
            capabilities,
            quantity=40,
            polling_interval=0.2,
        ).result()

        # when the purchase is under way and the worker is killed
        poller = client.begin_purchase_phone_numbers(search.search_id, polling_interval=0.5)
        deadline = time.monotonic() + 60
        while _purchase_progress(live)[1] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.kill_worker() >= 1
        status, done, total = _purchase_progress(live)
        assert status != "succeeded" and 0 < done < total, (status, done, total)

        # then serve restarts the worker, the sweeper re-queues the job, and it finishes
        poller.result(timeout=120)
        owned = {number.phone_number for number in client.list_purchased_phone_numbers()}
        assert owned == set(search.phone_numbers)
        assert _purchase_progress(live) == ("succeeded", 40, 40)
    finally:
        stop_spool(live, cleanups)

"""The SMPP carrier over real TCP against the test SMSC (tests/sms/smpp_peer.py).

`apps.sms.services.receive_sms` and `record_delivery_reports` are replaced at the module
boundary: these tests are about the wire, not what the services store.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from apps.sms import carriers
from apps.sms import services as sms_services
from apps.sms.carriers import CarrierError, Outgoing, Submitted
from apps.sms.carriers.smpp import Carrier
from tests.conftest import ROOT, free_port
from tests.sms.smpp_peer import (
    ESME_RINVDSTADR,
    ESME_RMSGQFUL,
    ESME_RTHROTTLED,
    ESME_RX_T_APPN,
    SmppPeer,
)

SENDER = "+14255550100"
RECIPIENT = "+15550001111"
TIMEOUT = 0.5


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def outgoing(text: str = "Hello", *, n: int = 1, recipient: str = RECIPIENT) -> Outgoing:
    return Outgoing(message_id=f"Outgoing_{n}", sender=SENDER, recipient=recipient, text=text)


@dataclass
class FakeServices:
    received: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    fail_next_report: int = 0

    def receive_sms(self, **kwargs: Any) -> None:
        self.received.append(kwargs)

    def record_delivery_reports(self, *, reports: list[tuple[str, bool, str]]) -> None:
        if self.fail_next_report:
            self.fail_next_report -= 1
            raise RuntimeError("database is down")
        for carrier_message_id, delivered, detail in reports:
            self.reports.append(
                {"carrier_message_id": carrier_message_id, "delivered": delivered, "detail": detail}
            )


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    names = {thread.name for thread in threading.enumerate()}
    assert not names & {"smpp-carrier", "smpp-carrier-receipts", "smpp-peer"}, names


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> FakeServices:
    fake = FakeServices()
    monkeypatch.setattr(sms_services, "receive_sms", fake.receive_sms)
    monkeypatch.setattr(sms_services, "record_delivery_reports", fake.record_delivery_reports)
    return fake


@pytest.fixture
def make_peer() -> Iterator[Callable[..., SmppPeer]]:
    peers: list[SmppPeer] = []

    def make(**options: Any) -> SmppPeer:
        peers.append(SmppPeer(**options).start())
        return peers[-1]

    yield make
    for peer in peers:
        peer.stop()


@pytest.fixture
def peer(make_peer: Callable[..., SmppPeer]) -> SmppPeer:
    return make_peer(system_id="spool", password="secret", receipt_retry_delay=0.05)


@pytest.fixture
def smpp_settings(settings: Any, peer: SmppPeer) -> Any:
    settings.SMS_CARRIER = "smpp"
    settings.SMPP_HOST = "127.0.0.1"
    settings.SMPP_PORT = peer.port
    settings.SMPP_SYSTEM_ID = "spool"
    settings.SMPP_PASSWORD = "secret"
    settings.SMPP_SYSTEM_TYPE = ""
    settings.SMPP_WINDOW = 10
    settings.SMPP_ENQUIRE_LINK_SECONDS = 30
    settings.SMPP_TIMEOUT_SECONDS = TIMEOUT
    settings.SMPP_RECONNECT_MAX_SECONDS = 0.1
    return settings


@pytest.fixture
def make_carrier(smpp_settings: Any, services: FakeServices) -> Iterator[Callable[..., Carrier]]:
    def make(*, bound: bool = True) -> Carrier:
        carriers.reset()
        carrier = carriers.get()
        assert isinstance(carrier, Carrier)
        carrier.start()
        if bound:
            assert wait_until(lambda: carrier.bound), "the carrier did not bind"
        return carrier

    yield make
    carriers.reset()


@pytest.fixture
def carrier(make_carrier: Callable[..., Carrier]) -> Carrier:
    return make_carrier()


def submit_all(carrier: Carrier, messages: list[Outgoing]) -> dict[str, Submitted | CarrierError]:
    answers = list(carrier.submit([messages]))
    assert sorted(message.message_id for message, _ in answers) == sorted(
        message.message_id for message in messages
    ), "every message is answered exactly once"
    return {message.message_id: answer for message, answer in answers}


# --- submitting ------------------------------------------------------------------------------
def test_short_gsm_message(carrier: Carrier, peer: SmppPeer) -> None:
    # given
    message = outgoing("Hello @ £5 {ok}")

    # when
    answer = submit_all(carrier, [message])["Outgoing_1"]

    # then
    assert len(peer.submits) == 1
    submit = peer.submits[0]
    assert isinstance(answer, Submitted)
    assert answer.carrier_message_id == submit.message_id != ""
    assert (submit.source, submit.destination) == ("14255550100", "15550001111")
    assert (submit.source_ton, submit.source_npi, submit.dest_ton, submit.dest_npi) == (1, 1, 1, 1)
    assert (submit.data_coding, submit.esm_class, submit.registered_delivery) == (0, 0, 1)
    assert submit.text == "Hello @ £5 {ok}"


def test_ucs2_message(carrier: Carrier, peer: SmppPeer) -> None:
    # given
    message = outgoing("Привет 😀, ça va?")

    # when
    answer = submit_all(carrier, [message])["Outgoing_1"]

    # then
    assert isinstance(answer, Submitted)
    assert peer.submits[0].data_coding == 8
    assert peer.messages[0].text == "Привет 😀, ça va?"


def test_concatenated_message(carrier: Carrier, peer: SmppPeer) -> None:
    # given: 3 parts, with an escape pair straddling the first boundary
    text = "a" * 152 + "€" + "b" * 200

    # when
    answer = submit_all(carrier, [outgoing(text)])["Outgoing_1"]

    # then
    # smpp34 hands PDUs to Python from several threads: order by part number, not arrival
    parts = sorted(peer.submits, key=lambda part: part.udh or (0, 0, 0))
    assert [part.udh and part.udh[1:] for part in parts] == [(3, 1), (3, 2), (3, 3)]
    assert len({part.udh and part.udh[0] for part in parts}) == 1, "one reference for all"
    assert {part.esm_class for part in parts} == {0x40}
    assert [part.registered_delivery for part in parts] == [0, 0, 1]
    assert parts[0].text == "a" * 152 and parts[1].text.startswith("€")
    assert peer.messages[0].text == text and peer.messages[0].parts == 3
    assert isinstance(answer, Submitted)
    assert answer.carrier_message_id == parts[2].message_id


def test_window_bounds_outstanding_submits(
    smpp_settings: Any, make_carrier: Callable[..., Carrier], peer: SmppPeer
) -> None:
    # given
    smpp_settings.SMPP_WINDOW = 5
    carrier = make_carrier()
    peer.resp_delay = 0.02  # long enough for the window to fill every time
    messages = [outgoing(f"message {n}", n=n) for n in range(50)]

    # when
    answers = submit_all(carrier, messages)

    # then
    assert all(isinstance(answer, Submitted) for answer in answers.values())
    assert len({answer.carrier_message_id for answer in answers.values()}) == 50  # type: ignore[union-attr]
    assert peer.max_outstanding == 5, "pipelined, and never past the window"


def test_the_next_chunk_is_taken_while_the_last_ones_answers_are_on_their_way(
    smpp_settings: Any, make_carrier: Callable[..., Carrier], peer: SmppPeer
) -> None:
    # given a window of 5 and an SMSC that takes a moment to answer each submit
    smpp_settings.SMPP_WINDOW = 5
    carrier = make_carrier()
    peer.resp_delay = 0.02
    answered: list[Outgoing] = []
    unanswered_when_taken: list[int] = []

    def chunks() -> Iterator[list[Outgoing]]:
        for start in range(0, 50, 5):
            unanswered_when_taken.append(start - len(answered))
            yield [outgoing(f"message {n}", n=n) for n in range(start, start + 5)]

    # when ten chunks of 5 go through one submit
    answers = []
    for message, answer in carrier.submit(chunks()):
        answered.append(message)
        answers.append(answer)

    # then each chunk after the first was taken while the last one's answers were still
    # coming, so the window stayed full; and every message was answered once
    assert all(unanswered > 0 for unanswered in unanswered_when_taken[1:]), unanswered_when_taken
    assert sorted(m.message_id for m in answered) == sorted(f"Outgoing_{n}" for n in range(50))
    assert all(isinstance(answer, Submitted) for answer in answers)
    assert peer.max_outstanding == 5


def test_after_a_lost_bind_the_next_chunk_goes_out_on_the_new_one(
    carrier: Carrier, peer: SmppPeer
) -> None:
    # given an SMSC that sits on the first chunk's submits
    peer.resp_delay = 5

    def chunks() -> Iterator[list[Outgoing]]:
        yield [outgoing(n=n) for n in range(3)]
        # and drops the connection before the next chunk is taken, then answers at once
        peer.drop_connections()
        assert wait_until(lambda: not carrier.bound)
        peer.resp_delay = 0
        yield [outgoing(n=n) for n in range(3, 6)]

    # when both chunks go through one submit
    answers = {message.message_id: answer for message, answer in carrier.submit(chunks())}

    # then the first chunk's messages were lost with the bind (to be retried), and the second
    # chunk waited for the carrier to bind again and went out on it
    lost = [answers[f"Outgoing_{n}"] for n in range(3)]
    assert all(isinstance(a, CarrierError) and "lost" in str(a) for a in lost), lost
    assert all(isinstance(answers[f"Outgoing_{n}"], Submitted) for n in range(3, 6)), answers
    assert peer.binds == 2


def test_rejections_are_permanent_or_transient(carrier: Carrier, peer: SmppPeer) -> None:
    # given
    peer.reject("15550000001", ESME_RINVDSTADR)
    peer.reject("15550000002", ESME_RTHROTTLED, count=1)
    peer.reject("15550000003", ESME_RMSGQFUL, count=1)
    messages = [
        outgoing(n=1, recipient="+15550000001"),
        outgoing(n=2, recipient="+15550000002"),
        outgoing(n=3, recipient="+15550000003"),
        outgoing(n=4),
    ]

    # when
    answers = submit_all(carrier, messages)

    # then
    invalid, throttled, queue_full, fine = (answers[f"Outgoing_{n}"] for n in range(1, 5))
    assert isinstance(invalid, CarrierError) and invalid.permanent
    assert isinstance(throttled, CarrierError) and not throttled.permanent
    assert isinstance(queue_full, CarrierError) and not queue_full.permanent
    assert isinstance(fine, Submitted)
    # when: the throttled destination is retried
    assert isinstance(submit_all(carrier, [messages[1]])["Outgoing_2"], Submitted)


def test_a_rejected_part_fails_the_whole_message(carrier: Carrier, peer: SmppPeer) -> None:
    # given
    peer.reject(RECIPIENT, ESME_RINVDSTADR)

    # when
    answers = submit_all(carrier, [outgoing("x" * 400)])

    # then
    assert isinstance(answers["Outgoing_1"], CarrierError) and answers["Outgoing_1"].permanent


def test_unanswered_submit_times_out(carrier: Carrier, peer: SmppPeer) -> None:
    # given
    peer.resp_delay = TIMEOUT + 1

    # when
    started = time.monotonic()
    answers = submit_all(carrier, [outgoing(n=n) for n in range(3)])

    # then
    assert time.monotonic() - started < TIMEOUT + 0.5
    assert all(isinstance(a, CarrierError) and not a.permanent for a in answers.values())


# --- receiving -----------------------------------------------------------------------------
def test_delivery_receipt_is_recorded(
    carrier: Carrier, peer: SmppPeer, services: FakeServices
) -> None:
    # given
    peer.undeliverable.add("15550009999")

    # when
    answers = submit_all(carrier, [outgoing(n=1), outgoing(n=2, recipient="+15550009999")])

    # then
    assert wait_until(lambda: len(services.reports) == 2)
    reports = {report["carrier_message_id"]: report for report in services.reports}
    delivered = reports[answers["Outgoing_1"].carrier_message_id]  # type: ignore[union-attr]
    undelivered = reports[answers["Outgoing_2"].carrier_message_id]  # type: ignore[union-attr]
    assert delivered["delivered"] is True and "stat:DELIVRD" in delivered["detail"]
    assert undelivered["delivered"] is False and "stat:UNDELIV" in undelivered["detail"]
    assert wait_until(lambda: len(peer.receipts_acked) == 2)
    assert {status for _id, status in peer.receipts_acked} == {0}


def test_receipt_is_refused_while_it_cannot_be_stored(
    carrier: Carrier, peer: SmppPeer, services: FakeServices
) -> None:
    # given
    services.fail_next_report = 1

    # when
    answer = submit_all(carrier, [outgoing()])["Outgoing_1"]

    # then: refused with a temporary error, redelivered by the SMSC, then stored
    assert isinstance(answer, Submitted)
    assert wait_until(lambda: len(peer.receipts_acked) == 2)
    assert [status for _id, status in peer.receipts_acked] == [ESME_RX_T_APPN, 0]
    assert len(services.reports) == 1
    assert services.reports[0]["carrier_message_id"] == answer.carrier_message_id


def test_mobile_originated_message(
    carrier: Carrier, peer: SmppPeer, services: FakeServices
) -> None:
    # when
    statuses = peer.send_mo("15550001111", "14255550100", "STOP")

    # then
    assert statuses == [0]
    assert services.received == [
        {
            "sender": "+15550001111",
            "recipient": "+14255550100",
            "text": "STOP",
            "carrier_message_id": "",
        }
    ]


def test_concatenated_mobile_originated_message(
    carrier: Carrier, peer: SmppPeer, services: FakeServices
) -> None:
    # given: UCS-2, 3 parts, emoji at the part boundaries
    text = "Привет " * 9 + "😀" * 40

    # when
    statuses = peer.send_mo("+15550001111", "+14255550100", text)

    # then
    assert statuses == [0, 0, 0]
    assert len(services.received) == 1
    assert services.received[0]["text"] == text
    assert services.received[0]["sender"] == "+15550001111"


def test_mo_is_refused_when_it_cannot_be_stored(
    carrier: Carrier, peer: SmppPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(sms_services, "receive_sms", broken)

    # when
    statuses = peer.send_mo("15550001111", "14255550100", "hello")

    # then
    assert statuses == [ESME_RX_T_APPN]


# --- the connection ------------------------------------------------------------------------
def test_smsc_down_at_start(
    smpp_settings: Any, make_carrier: Callable[..., Carrier], services: FakeServices
) -> None:
    # given
    smpp_settings.SMPP_PORT = free_port()  # nobody listens
    carrier = make_carrier(bound=False)

    # when
    started = time.monotonic()
    answers = submit_all(carrier, [outgoing(n=n) for n in range(3)])

    # then
    assert time.monotonic() - started < TIMEOUT + 0.5
    assert all(isinstance(a, CarrierError) and not a.permanent for a in answers.values())


def test_reconnects_after_the_connection_drops(carrier: Carrier, peer: SmppPeer) -> None:
    # given
    assert isinstance(submit_all(carrier, [outgoing()])["Outgoing_1"], Submitted)

    # when
    peer.drop_connections()

    # then
    assert wait_until(lambda: peer.binds == 2 and carrier.bound)
    assert isinstance(submit_all(carrier, [outgoing(n=2)])["Outgoing_2"], Submitted)


def test_receipt_pending_over_a_reconnect_still_arrives(
    carrier: Carrier, peer: SmppPeer, services: FakeServices
) -> None:
    # given
    peer.receipt_delay = 0.3
    answer = submit_all(carrier, [outgoing()])["Outgoing_1"]
    assert isinstance(answer, Submitted)

    # when
    peer.drop_connections()

    # then
    assert wait_until(lambda: len(services.reports) == 1)
    assert services.reports[0]["carrier_message_id"] == answer.carrier_message_id
    assert peer.binds == 2


def test_a_drop_fails_what_went_out_and_the_rest_goes_out_on_the_next_bind(
    carrier: Carrier, peer: SmppPeer
) -> None:
    # given: the SMSC sits on the first window of submits (10), then drops the connection and
    # answers at once from the next bind on
    peer.resp_delay = 5

    def drop() -> None:
        peer.drop_connections()
        peer.resp_delay = 0

    threading.Timer(0.1, drop).start()

    # when
    answers = submit_all(carrier, [outgoing(n=n) for n in range(30)])

    # then the window that went out is failed as lost (retried later), without waiting for
    # the submit timeout, and the messages that had not gone out went out on the new bind
    lost = [a for a in answers.values() if isinstance(a, CarrierError)]
    assert len(lost) == 10 and all("lost" in str(a) and not a.permanent for a in lost)
    assert sum(isinstance(a, Submitted) for a in answers.values()) == 20
    assert peer.binds == 2


def test_wrong_password(
    smpp_settings: Any, make_carrier: Callable[..., Carrier], peer: SmppPeer
) -> None:
    # given
    smpp_settings.SMPP_PASSWORD = "wrong"
    carrier = make_carrier(bound=False)

    # when
    answers = submit_all(carrier, [outgoing()])

    # then
    assert peer.bind_rejects >= 1 and peer.binds == 0
    assert isinstance(answers["Outgoing_1"], CarrierError)
    assert not answers["Outgoing_1"].permanent


def test_enquire_link_keeps_the_bind(
    smpp_settings: Any, make_carrier: Callable[..., Carrier], peer: SmppPeer
) -> None:
    # given
    smpp_settings.SMPP_ENQUIRE_LINK_SECONDS = 0.1
    carrier = make_carrier()

    # when: several enquire_link round trips
    time.sleep(0.5)

    # then
    assert carrier.bound and peer.binds == 1
    assert isinstance(submit_all(carrier, [outgoing()])["Outgoing_1"], Submitted)


def test_peer_logs_one_json_line_per_submit(
    smpp_settings: Any,
    make_peer: Callable[..., SmppPeer],
    make_carrier: Callable[..., Carrier],
    tmp_path: Any,
) -> None:
    # given
    log = tmp_path / "submits.jsonl"
    logging_peer = make_peer(log_path=str(log))
    smpp_settings.SMPP_PORT = logging_peer.port
    carrier = make_carrier()

    # when
    submit_all(carrier, [outgoing("x" * 200, n=1), outgoing(n=2)])

    # then
    assert len(log.read_text().splitlines()) == 3


def test_peer_runs_as_a_process(
    smpp_settings: Any, make_carrier: Callable[..., Carrier], tmp_path: Any
) -> None:
    # given
    log = tmp_path / "submits.jsonl"
    command = [sys.executable, "-m", "tests.sms.smpp_peer", "--port", "0", "--log", str(log)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            smpp_settings.SMPP_PORT = int(process.stdout.readline().rsplit(":", 1)[1])
            carrier = make_carrier()

            # when
            answers = submit_all(carrier, [outgoing("x" * 200, n=1), outgoing(n=2)])

            # then
            assert all(isinstance(answer, Submitted) for answer in answers.values())
            assert len(log.read_text().splitlines()) == 3
            carriers.reset()
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0

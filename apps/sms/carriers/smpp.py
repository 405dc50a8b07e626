"""SMPP 3.4 carrier: one transceiver bind per process to an SMSC, through smpplib.

A daemon thread owns the connection: it connects and binds (`bind_transceiver`), retries
with exponential backoff (1 s doubling up to SMPP_RECONNECT_MAX_SECONDS) while the SMSC is
down or refuses the bind, sends enquire_link every SMPP_ENQUIRE_LINK_SECONDS, and is the
only reader of the socket. It matches submit_sm_resp to waiting `submit()` calls by
sequence number, and hands deliver_sm to `apps.sms.services` (delivery receipts, in
batches by a second thread, to `record_delivery_reports`; mobile-originated messages to
`receive_sms`), answering with deliver_sm_resp only once the service returned, so the SMSC
redelivers what we failed to store.

`submit()` runs in the caller's thread and keeps at most SMPP_WINDOW submit_sm outstanding
on the bind (shared by concurrent callers), taking the caller's next chunk of messages while
the last one's answers are still on their way. Long texts go out as concatenated parts with an
8-bit-reference UDH; receipts are requested on the last part, whose message_id becomes the
carrier message id. Answers are yielded in the order they complete, not input order.

Settings, read at construction: SMPP_HOST, SMPP_PORT, SMPP_SYSTEM_ID, SMPP_PASSWORD,
SMPP_SYSTEM_TYPE, SMPP_WINDOW, SMPP_ENQUIRE_LINK_SECONDS, SMPP_TIMEOUT_SECONDS,
SMPP_RECONNECT_MAX_SECONDS.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import re
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.smpp
from django.conf import settings
from django.db import close_old_connections

from apps.sms import segments
from apps.sms.carriers import CarrierError, Outgoing, Submitted

logger = logging.getLogger(__name__)

ESME_ROK = 0x00
ESME_RX_T_APPN = 0x64
# Worth retrying later: the SMSC is busy or confused, the message itself is fine.
TRANSIENT_STATUSES = frozenset({0x04, 0x08, 0x14, 0x58})  # RINVBNDSTS RSYSERR RMSGQFUL RTHROTTLED
_LOST = -1  # pseudo status: the bind went away before the answer came
_TIMEOUT = -2  # pseudo status: no answer within SMPP_TIMEOUT_SECONDS
_WINDOW_FULL = 0  # never a sequence number (they start at 1)
_POLL_SECONDS = 0.2  # reader wake-up, bounds how long stop() waits
_PARTIAL_MO_SECONDS = 15 * 60
# Receipts are stored in batches (one transaction each) by their own thread, so the reader
# keeps reading submit_sm_resp meanwhile; each is acknowledged once its batch is stored.
_RECEIPT_BATCH = 200
_RECEIPT_LINGER_SECONDS = 0.02
# The de-facto receipt text (SMPP 3.4 appendix B), for SMSCs that don't flag receipts.
_RECEIPT_TEXT = re.compile(r"\bid:\S+.*\bdone date:\d+.*\bstat:\w+", re.IGNORECASE | re.DOTALL)
_RECEIPT_ID = re.compile(r"\bid:(\S+)", re.IGNORECASE)
_RECEIPT_STAT = re.compile(r"\bstat:(\w+)", re.IGNORECASE)
_RECEIPT_ERR = re.compile(r"\berr:(\w+)", re.IGNORECASE)
_MESSAGE_STATES = {2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 8: "REJECTD"}


@dataclass
class _Batch:
    """One `submit()` call's answers, appended by the reader thread under the condition."""

    answers: deque[tuple[int, int, str]] = field(default_factory=deque)


@dataclass
class _Partial:
    """Parts of a concatenated mobile-originated message that arrived so far."""

    total: int
    parts: dict[int, bytes] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)


def _addr(value: Any) -> str:
    raw = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")
    return raw.lstrip("+")


def _decode(data: bytes, data_coding: int) -> str:
    if data_coding == 8:
        return data.decode("utf-16-be", "replace")
    if data_coding == 0:
        return segments.decode_gsm7(data)
    return data.decode("latin-1")


def _disconnect(client: Any) -> None:
    client.state = smpplib.consts.SMPP_CLIENT_STATE_OPEN  # else smpplib warns about the state
    client.disconnect()


def _call_service(name: str, **arguments: Any) -> None:
    from apps.sms import services  # lazily: services import models, carriers must not

    close_old_connections()  # a long-lived thread outside any request
    try:
        getattr(services, name)(**arguments)  # looked up per call, so tests can patch it
    finally:
        close_old_connections()


def _error(status: int) -> CarrierError:
    if status == _LOST:
        return CarrierError("SMPP bind lost before the SMSC answered", permanent=False)
    if status == _TIMEOUT:
        return CarrierError("SMSC did not answer submit_sm in time", permanent=False)
    permanent = status not in TRANSIENT_STATUSES
    return CarrierError(f"SMSC rejected submit_sm (status 0x{status:02X})", permanent=permanent)


class Carrier:
    name = "smpp"

    def __init__(self) -> None:
        self.host: str = settings.SMPP_HOST
        self.port = int(settings.SMPP_PORT)
        self.system_id: str = settings.SMPP_SYSTEM_ID
        self.password: str = settings.SMPP_PASSWORD
        self.system_type: str = settings.SMPP_SYSTEM_TYPE
        self.window = max(1, int(settings.SMPP_WINDOW))
        self.enquire_link_seconds = float(settings.SMPP_ENQUIRE_LINK_SECONDS)
        self.timeout = float(settings.SMPP_TIMEOUT_SECONDS)
        self.reconnect_max = float(settings.SMPP_RECONNECT_MAX_SECONDS)
        self._cond = threading.Condition()  # guards _client, _generation, _pending
        self._send_lock = threading.Lock()  # smpplib's client is not thread-safe
        self._client: Any = None  # the bound smpplib client, or None
        self._generation = 0  # bumped on every new bind
        self._pending: dict[int, tuple[_Batch, float]] = {}  # sequence -> (batch, deadline)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._reference = random.randrange(256)
        self._partials: dict[tuple[str, int], _Partial] = {}  # reader thread only
        # (client, sequence, (carrier id, delivered, detail)) awaiting storage and an answer
        self._receipts: queue.Queue[tuple[Any, int, tuple[str, bool, str]]] = queue.Queue()
        self._receipt_thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            # A fresh event per thread: a previous thread still winding down stays stopped.
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stopping,), name="smpp-carrier", daemon=True
            )
            self._thread.start()
            self._receipt_thread = threading.Thread(
                target=self._store_receipts,
                args=(self._stopping,),
                name="smpp-carrier-receipts",
                daemon=True,
            )
            self._receipt_thread.start()

    def stop(self) -> None:
        with self._cond:
            thread, self._thread = self._thread, None
            receipts, self._receipt_thread = self._receipt_thread, None
            self._stopping.set()
        if receipts is not None:
            receipts.join(timeout=2 * _POLL_SECONDS + 1)
        if thread is not None:
            thread.join(timeout=2 * self.timeout + 2 * _POLL_SECONDS)  # connect + bind at most

    @property
    def bound(self) -> bool:
        return self._client is not None

    def _run(self, stopping: threading.Event) -> None:
        delay = min(1.0, self.reconnect_max)
        while not stopping.is_set():
            client = self._bind(stopping)
            if client is None:
                stopping.wait(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            delay = min(1.0, self.reconnect_max)
            try:
                self._read_loop(client, stopping)
            except Exception as exc:
                logger.warning("SMPP connection to %s:%s lost: %r", self.host, self.port, exc)
            finally:
                self._drop(client, stopping)
            stopping.wait(delay)  # a peer that drops us at once must not make us spin

    def _bind(self, stopping: threading.Event) -> Any:
        client = smpplib.client.Client(
            self.host,
            self.port,
            timeout=self.timeout,
            logger_name=f"{__name__}.wire",
            allow_unknown_opt_params=True,
        )
        try:
            client.connect()
            # PDUs are small writes: without this, Nagle and delayed ACKs hold each window
            # for ~40 ms (measured: 250 -> see bench/sms.py).
            client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.bind_transceiver(
                system_id=self.system_id, password=self.password, system_type=self.system_type
            )
        except Exception as exc:
            logger.warning("SMPP bind to %s:%s failed: %r", self.host, self.port, exc)
            _disconnect(client)
            return None
        logger.info("SMPP bound to %s:%s as %r", self.host, self.port, self.system_id)
        with self._cond:
            if not stopping.is_set():  # else stop() came while we were binding
                self._client = client
                self._generation += 1
                self._cond.notify_all()
                return client
        self._close(client, stopping)
        return None

    def _drop(self, client: Any, stopping: threading.Event) -> None:
        with self._cond:
            if self._client is client:
                self._client = None
                for sequence, (batch, _deadline) in self._pending.items():
                    batch.answers.append((sequence, _LOST, ""))
                self._pending.clear()
                self._cond.notify_all()
        self._close(client, stopping)

    def _close(self, client: Any, stopping: threading.Event) -> None:
        if stopping.is_set():
            with contextlib.suppress(Exception):  # best effort: we are closing anyway
                client._socket.settimeout(min(self.timeout, 1.0))
                self._send(client, "unbind")
                deadline = time.monotonic() + min(self.timeout, 1.0)
                while time.monotonic() < deadline and client.read_pdu().command != "unbind_resp":
                    pass  # late answers to submits nobody waits for any more
        _disconnect(client)

    # --- reader thread ---------------------------------------------------------------------
    def _read_loop(self, client: Any, stopping: threading.Event) -> None:
        last_enquire = time.monotonic()
        awaiting_since: float | None = None  # an enquire_link went out, nothing heard since
        with selectors.DefaultSelector() as selector:
            selector.register(client._socket, selectors.EVENT_READ)
            while not stopping.is_set():
                now = time.monotonic()
                if awaiting_since is not None and now - awaiting_since > self.timeout:
                    raise ConnectionError("no answer to enquire_link")
                if now - last_enquire >= self.enquire_link_seconds:
                    self._send(client, "enquire_link")
                    last_enquire = now
                    awaiting_since = awaiting_since or now
                if not selector.select(_POLL_SECONDS):
                    continue
                pdu = client.read_pdu()  # whole PDUs only: the socket timeout is generous
                awaiting_since = None
                self._dispatch(client, pdu)

    def _dispatch(self, client: Any, pdu: Any) -> None:
        command = pdu.command
        if command in ("submit_sm_resp", "generic_nack"):
            message_id = (getattr(pdu, "message_id", None) or b"").decode("ascii", "replace")
            status = pdu.status if pdu.status or command == "submit_sm_resp" else 0x08
            with self._cond:
                entry = self._pending.pop(pdu.sequence, None)
                if entry is not None:
                    entry[0].answers.append((pdu.sequence, status, message_id))
                    self._cond.notify_all()
        elif command == "deliver_sm":
            try:
                status = self._on_deliver(client, pdu)
            except Exception:
                logger.exception("Could not store an incoming deliver_sm; the SMSC will retry")
                status = ESME_RX_T_APPN
            if status is not None:  # None: a receipt, answered once its batch is stored
                self._send(client, "deliver_sm_resp", sequence=pdu.sequence, status=status)
        elif command == "enquire_link":
            self._send(client, "enquire_link_resp", sequence=pdu.sequence)
        elif command == "unbind":
            self._send(client, "unbind_resp", sequence=pdu.sequence)
            raise ConnectionError("the SMSC unbound")
        elif command not in ("enquire_link_resp", "unbind_resp"):
            logger.warning("Ignored SMPP %s", command)

    def _send(
        self, client: Any, command: str, *, sequence: int | None = None, **fields: Any
    ) -> Any:
        with self._send_lock:  # make_pdu draws the next sequence number from the client
            pdu = smpplib.smpp.make_pdu(command, client=client, **fields)
            if sequence is not None:
                pdu.sequence = sequence
            client.send_pdu(pdu)
        return pdu

    def _on_deliver(self, client: Any, pdu: Any) -> int | None:
        raw: bytes = pdu.short_message or pdu.message_payload or b""
        text = raw.decode("latin-1")
        if pdu.esm_class & 0x04 or _RECEIPT_TEXT.search(text):
            return self._on_receipt(client, pdu, text)
        source, destination = _addr(pdu.source_addr), _addr(pdu.destination_addr)
        body, concat = raw, None
        if pdu.esm_class & 0x40 and raw:
            header, body = raw[1 : 1 + raw[0]], raw[1 + raw[0] :]
            concat = _concatenation(header)
        elif pdu.sar_msg_ref_num is not None and pdu.sar_total_segments:
            concat = (pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum or 1)
        key = None
        if concat is not None and concat[1] > 1:
            key = (source, concat[0])
            whole = self._reassemble(key, concat, body)
            if whole is None:
                return ESME_ROK  # buffered; the message is stored when its last part arrives
            body = whole
        text = _decode(body, pdu.data_coding or 0)
        # SMPP gives an MO no id of its own (only receipts carry one).
        _call_service(
            "receive_sms",
            sender=f"+{source}",
            recipient=f"+{destination}",
            text=text,
            carrier_message_id="",
        )
        if key is not None:
            del self._partials[key]  # only now: a redelivered last part must find the others
        return ESME_ROK

    def _on_receipt(self, client: Any, pdu: Any, text: str) -> int | None:
        found_id, found_stat = _RECEIPT_ID.search(text), _RECEIPT_STAT.search(text)
        found_err = _RECEIPT_ERR.search(text)
        tlv_id = (pdu.receipted_message_id or b"").decode("ascii", "replace")
        message_id = found_id.group(1) if found_id else tlv_id
        stat = found_stat.group(1).upper() if found_stat else ""
        if not stat and pdu.message_state is not None:
            stat = _MESSAGE_STATES.get(pdu.message_state, "UNKNOWN")
        if stat == "ENROUTE" or pdu.esm_class & 0x3C == 0x20:
            return ESME_ROK  # an intermediate notification: the final receipt follows
        detail = f"stat:{stat}" + (f" err:{found_err.group(1)}" if found_err else "")
        self._receipts.put((client, pdu.sequence, (message_id, stat == "DELIVRD", detail)))
        return None

    def _store_receipts(self, stopping: threading.Event) -> None:
        """Store queued receipts in batches, then answer each deliver_sm: OK once stored, or
        ESME_RX_T_APPN (the SMSC sends it again) when storing failed. A receipt whose bind
        has gone is stored but not answered: the SMSC resends it on the new bind (harmless,
        receipts are idempotent)."""
        while not stopping.is_set():
            try:
                batch = [self._receipts.get(timeout=_POLL_SECONDS)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + _RECEIPT_LINGER_SECONDS
            while len(batch) < _RECEIPT_BATCH:
                try:
                    batch.append(self._receipts.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            try:
                _call_service("record_delivery_reports", reports=[item for _c, _s, item in batch])
                status = ESME_ROK
            except Exception:
                logger.exception(
                    "Could not store %d delivery receipts; the SMSC will retry", len(batch)
                )
                status = ESME_RX_T_APPN
            for client, sequence, _item in batch:
                if client is self._client:
                    with contextlib.suppress(Exception):  # the bind may drop meanwhile
                        self._send(client, "deliver_sm_resp", sequence=sequence, status=status)

    def _reassemble(
        self, key: tuple[str, int], concat: tuple[int, int, int], body: bytes
    ) -> bytes | None:
        """The whole message's bytes once every part of `key` arrived, else None."""
        now = time.monotonic()
        for stale in [k for k, p in self._partials.items() if now - p.since > _PARTIAL_MO_SECONDS]:
            del self._partials[stale]  # the rest never came; don't hold parts forever
        partial = self._partials.setdefault(key, _Partial(total=concat[1]))
        partial.parts[concat[2]] = body
        if len(partial.parts) < partial.total:
            return None
        return b"".join(partial.parts[number] for number in sorted(partial.parts))

    # --- submitting ------------------------------------------------------------------------
    def _next_reference(self) -> int:
        with self._cond:
            self._reference = (self._reference + 1) % 256
            return self._reference

    def _parts(self, message: Outgoing) -> list[dict[str, Any]]:
        texts = segments.split(message.text)
        if len(texts) > 255:
            raise CarrierError("message too long for 255 concatenated parts", permanent=True)
        gsm = segments.is_gsm7(message.text)
        common = {
            "source_addr_ton": 1,  # international
            "source_addr_npi": 1,  # ISDN (E.164)
            "source_addr": message.sender.lstrip("+"),
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": message.recipient.lstrip("+"),
            "data_coding": 0 if gsm else 8,
            "esm_class": 0x40 if len(texts) > 1 else 0,
        }
        reference = self._next_reference() if len(texts) > 1 else 0
        parts = []
        for number, text in enumerate(texts, start=1):
            udh = bytes((5, 0, 3, reference, len(texts), number)) if len(texts) > 1 else b""
            body = segments.encode_gsm7(text) if gsm else text.encode("utf-16-be")
            last = number == len(texts)
            # Always ask for a receipt: the message log shows delivery status either way.
            parts.append({**common, "short_message": udh + body, "registered_delivery": int(last)})
        return parts

    def _send_part(self, client: Any, batch: _Batch, fields: dict[str, Any]) -> int | None:
        """The part's sequence number; _WINDOW_FULL to try later; None if the bind changed."""
        with self._send_lock:
            with self._cond:
                if self._client is not client:
                    return None
                if len(self._pending) >= self.window:  # another batch took the last slot
                    return _WINDOW_FULL
                pdu = smpplib.smpp.make_pdu("submit_sm", client=client, **fields)
                self._pending[pdu.sequence] = (batch, time.monotonic() + self.timeout)
            try:
                client.send_pdu(pdu)
            except Exception:
                with self._cond:
                    self._pending.pop(pdu.sequence, None)
                return None
        return int(pdu.sequence)

    def _expire_locked(self, now: float) -> None:
        for sequence, (batch, deadline) in list(self._pending.items()):
            if deadline <= now:
                del self._pending[sequence]
                batch.answers.append((sequence, _TIMEOUT, ""))

    def submit(
        self, chunks: Iterable[Sequence[Outgoing]]
    ) -> Iterator[tuple[Outgoing, Submitted | CarrierError]]:
        """Submit the messages of `chunks` through the bind, pipelined within SMPP_WINDOW.

        The next chunk is taken once every part of the last one is sent, while those still
        wait for their answers: the window stays full from one chunk to the next. Yields
        every message taken exactly once, in the order answers complete. No bind within
        SMPP_TIMEOUT_SECONDS of taking a chunk, or a part unanswered for that long, yields a
        transient CarrierError for every message not answered yet; a lost bind, for every
        message that had a part go out on it (the others wait for the next bind). SMSC
        rejections are permanent unless throttling/queue-full/system-error/bind-status.
        """
        self.start()
        upcoming = iter(chunks)
        more = True  # chunks may follow
        batch = _Batch()
        messages: list[Outgoing] = []  # taken so far; an index names one
        todo: deque[tuple[int, dict[str, Any]]] = deque()
        parts_left: dict[int, int] = {}
        ready: deque[tuple[int, Submitted | CarrierError]] = deque()
        sent: dict[int, tuple[int, bool]] = {}  # sequence -> (message index, is last part)
        started: set[int] = set()  # messages with a part sent
        last_ids: dict[int, str] = {}
        generation: int | None = None  # the bind the unanswered parts went out on
        lost_generation: int | None = None  # a bind that went away under this submit
        bind_deadline = 0.0

        def take_next_chunk() -> None:
            nonlocal more, bind_deadline
            chunk = next(upcoming, None)
            if chunk is None:
                more = False
                return
            if generation is None:
                bind_deadline = time.monotonic() + self.timeout
            for message in chunk:
                index = len(messages)
                messages.append(message)
                try:
                    parts = self._parts(message)
                except CarrierError as exc:
                    ready.append((index, exc))
                    continue
                parts_left[index] = len(parts)
                todo.extend((index, fields) for fields in parts)

        def fail(indexes: set[int], error: CarrierError) -> None:
            for index in indexes & parts_left.keys():
                del parts_left[index]
                ready.append((index, error))

        def fail_all(error: CarrierError) -> None:
            nonlocal generation
            fail(set(parts_left), error)
            todo.clear()
            generation = None  # the next chunk waits for a bind of its own

        def lose_bind() -> None:
            """What went out on the bind is lost; the rest waits for the next bind."""
            nonlocal generation, lost_generation, bind_deadline
            fail(started, _error(_LOST))
            sent.clear()
            lost_generation, generation = generation, None
            bind_deadline = time.monotonic() + self.timeout

        while more or parts_left or ready:
            if more and not todo:
                take_next_chunk()  # outside the lock: the caller may do its own work here
            client = None
            with self._cond:
                now = time.monotonic()
                self._expire_locked(now)  # first, so expired parts are answered below
                while batch.answers:
                    sequence, status, message_id = batch.answers.popleft()
                    index, last = sent.pop(sequence, (-1, False))
                    if index not in parts_left:
                        continue  # that message already failed through another part
                    if status != ESME_ROK:
                        del parts_left[index]
                        ready.append((index, _error(status)))
                        continue
                    if last:
                        last_ids[index] = message_id
                    parts_left[index] -= 1
                    if not parts_left[index]:
                        del parts_left[index]
                        ready.append((index, Submitted(carrier_message_id=last_ids[index])))
                if generation is not None and (
                    self._client is None or self._generation != generation
                ):
                    lose_bind()
                bound = self._client is not None and self._generation != lost_generation
                if not bound and generation is None and now >= bind_deadline:
                    fail_all(CarrierError("no SMPP bind to the SMSC", permanent=False))
                while todo and todo[0][0] not in parts_left:
                    todo.popleft()  # the rest of a message that already failed
                if todo and bound and len(self._pending) < self.window:
                    client = self._client
                    generation = self._generation if generation is None else generation
                elif not ready and parts_left and (todo or not more):
                    deadlines = [d for _b, d in self._pending.values()] + [now + self.timeout]
                    if not bound and generation is None:
                        deadlines.append(bind_deadline)
                    self._cond.wait(max(0.0, min(deadlines) - now) + 0.001)
            while ready:
                index, result = ready.popleft()
                yield messages[index], result
            if client is not None and todo:
                index, fields = todo[0]
                sent_as = self._send_part(client, batch, fields)
                if sent_as is None:
                    lose_bind()
                elif sent_as != _WINDOW_FULL:
                    todo.popleft()
                    sent[sent_as] = (index, fields["registered_delivery"] == 1)
                    started.add(index)


def _concatenation(header: bytes) -> tuple[int, int, int] | None:
    """(reference, total, part number) from a UDH's concatenation element, if any."""
    position = 0
    while position + 2 <= len(header):
        element, length = header[position], header[position + 1]
        value = header[position + 2 : position + 2 + length]
        if element == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if element == 0x08 and length == 4:
            return int.from_bytes(value[:2], "big"), value[2], value[3]
        position += 2 + length
    return None

"""A test SMSC speaking SMPP 3.4 on loopback, for the SMPP carrier's tests and benchmarks.

The SMPP sessions are smpp34's (a Rust SMPP 3.4 implementation with an asyncio API), so our
smpplib-based carrier is checked against an independent codec. smpp34's Python server accepts
any bind and cannot drop a TCP connection, so a thin asyncio gate sits in front of it: it
checks the bind's credentials (answering ESME_RBINDFAIL itself), forwards whole PDUs both
ways, counts submit_sm outstanding on each connection, and can abort every connection.

In a test::

    peer = SmppPeer(resp_delay=0.01).start()   # a daemon thread runs the asyncio loop
    peer.port; peer.submits; peer.messages; peer.receipts_acked; peer.mo_acked
    peer.reject("15550001111", ESME_RTHROTTLED, count=2)
    peer.send_mo("15550001111", "14255550100", "hello")   # -> deliver_sm_resp statuses
    peer.drop_connections(); peer.stop()

As a process (runs until SIGTERM; one JSON line per submit_sm in FILE, flushed at once)::

    python -m tests.sms.smpp_peer --port N --log FILE

Worth knowing: `submits` is in the order smpp34 hands PDUs over, which is not always wire
order (its Tokio runtime runs several threads), so sort parts by UDH number. A receipt
(`stat:DELIVRD`, or `UNDELIV` for `undeliverable` destinations) goes out for each submit_sm
that asked for one, as real SMSCs do; a receipt answered with an error is retried. On a 2-core
box the peer tops out around 1,500 submit_sm/s with receipts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import smpp34

from apps.sms import segments

ESME_ROK = 0x00
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64

_BINDS = {0x01, 0x02, 0x09}  # bind_receiver, bind_transmitter, bind_transceiver
_SUBMIT_SM, _SUBMIT_SM_RESP = 0x04, 0x80000004
_TLV_RECEIPTED_MESSAGE_ID, _TLV_MESSAGE_STATE = 0x001E, 0x0427
_RECEIPT_ATTEMPTS = 5


@dataclass
class SubmitRecord:
    """One submit_sm PDU as the SMSC saw it, and its answer."""

    session_id: str
    source: str
    destination: str
    source_ton: int
    source_npi: int
    dest_ton: int
    dest_npi: int
    data_coding: int
    esm_class: int
    registered_delivery: int
    udh: tuple[int, int, int] | None  # (reference, total, part number)
    text: str  # this part's text, UDH removed
    message_id: str  # "" when rejected
    status: int
    at: float = field(default_factory=time.time)


@dataclass
class MessageRecord:
    """A whole message: one submit_sm, or every part of a concatenated one."""

    source: str
    destination: str
    data_coding: int
    text: str
    parts: int
    message_ids: list[str]


def _decode(data: bytes, data_coding: int) -> str:
    if data_coding == 8:
        return data.decode("utf-16-be", "replace")
    if data_coding == 0:
        return segments.decode_gsm7(data)
    return data.decode("latin-1")


def _split_udh(data: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    header, body = data[1 : 1 + data[0]], data[1 + data[0] :]
    position = 0
    while position + 2 <= len(header):
        element, length = header[position], header[position + 1]
        value = header[position + 2 : position + 2 + length]
        if element == 0x00 and length == 3:
            return (value[0], value[1], value[2]), body
        if element == 0x08 and length == 4:
            return (int.from_bytes(value[:2], "big"), value[2], value[3]), body
        position += 2 + length
    return None, body


async def _read_pdu(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readexactly(4)
        length = int.from_bytes(head, "big")
        if not 16 <= length <= 65536:
            return None
        return head + await reader.readexactly(length - 4)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmppPeer:
    def __init__(
        self,
        *,
        port: int = 0,
        system_id: str | None = None,
        password: str | None = None,
        log_path: str | None = None,
        resp_delay: float = 0.0,
        receipt_delay: float = 0.0,
        receipt_retry_delay: float = 0.5,
        undeliverable: Iterable[str] = (),
    ) -> None:
        self.port = port
        self.system_id, self.password = system_id, password  # None: any credentials
        self.log_path = log_path
        self.resp_delay = resp_delay
        self.receipt_delay = receipt_delay
        self.receipt_retry_delay = receipt_retry_delay
        self.undeliverable = {number.lstrip("+") for number in undeliverable}
        self.submits: list[SubmitRecord] = []
        self.messages: list[MessageRecord] = []
        self.receipts_acked: list[tuple[str, int]] = []  # (message_id, deliver_sm_resp status)
        self.mo_acked: list[tuple[str, str, int]] = []  # (source, destination, status) per part
        self.binds = 0
        self.bind_rejects = 0
        self.max_outstanding = 0
        self._rejections: dict[str, tuple[int, int | None]] = {}  # destination -> (status, n)
        self._ids = itertools.count(1)
        self._references = itertools.count(1)
        self._sessions: dict[str, smpp34.Esme] = {}
        self._partials: dict[tuple[str, str, str, int], dict[int, SubmitRecord]] = {}
        self._part_bytes: dict[int, bytes] = {}  # id(record) -> body, until reassembled
        # Receipts waiting for a bind: (session_id, source, destination, message_id, stat).
        self._undelivered: list[tuple[str, str, str, str, str]] = []
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log: IO[str] | None = None
        self._server: smpp34.Server | None = None
        self._gate: asyncio.Server | None = None
        self._inner_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- in-process control (thread mode) ------------------------------------------------
    def start(self) -> SmppPeer:
        """Run the SMSC on a daemon thread; returns once it listens on `self.port`."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="smpp-peer", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.astart(), loop).result(10)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.astop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        self._loop = self._thread = None

    def _call(self, coroutine: Any, timeout: float = 10.0) -> Any:
        assert self._loop is not None, "start() the peer first"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def send_mo(self, source: str, destination: str, text: str, timeout: float = 5.0) -> list[int]:
        """Deliver a mobile-originated message (split with a UDH if long) to the newest bind;
        returns each part's deliver_sm_resp status."""
        return list(self._call(self.asend_mo(source, destination, text, timeout), timeout + 1))

    def drop_connections(self) -> None:
        """Abort every TCP connection (no unbind), as a crashed or rebooted SMSC would."""
        self._call(self._adrop())

    def reject(self, destination: str, status: int, count: int | None = None) -> None:
        """Answer the next `count` submit_sm to `destination` ("*": any) with `status`;
        count=None: until told otherwise (`reject(destination, ESME_ROK)`)."""
        self._rejections[destination.lstrip("+")] = (status, count)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # --- the asyncio side -----------------------------------------------------------------
    async def astart(self) -> None:
        if self.log_path:
            self._log = open(self.log_path, "a", encoding="utf-8")
        for attempt in range(5):  # the free port may be taken before smpp34 binds it
            self._inner_port = _free_port()
            server = smpp34.Server("127.0.0.1", self._inner_port, system_id="spool-peer")
            try:
                await server.start()
                break
            except Exception:
                if attempt == 4:
                    raise
        self._server = server
        self._spawn(self._events(server))
        self._gate = await asyncio.start_server(self._on_connection, "127.0.0.1", self.port)
        self.port = int(self._gate.sockets[0].getsockname()[1])

    async def astop(self) -> None:
        if self._gate is not None:
            self._gate.close()
        await self._adrop()
        if self._gate is not None:
            await self._gate.wait_closed()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._log is not None:
            self._log.close()

    async def _adrop(self) -> None:
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()
        self._sessions.clear()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the gate -------------------------------------------------------------------------
    def _credentials_ok(self, body: bytes) -> bool:
        system_id, password, *_ = body.split(b"\0", 2) + [b"", b""]
        return (self.system_id is None or system_id.decode() == self.system_id) and (
            self.password is None or password.decode() == self.password
        )

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._connections.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            first = await _read_pdu(reader)
            if first is None:
                return
            command_id, _status, sequence = struct.unpack(">III", first[4:16])
            if command_id in _BINDS and not self._credentials_ok(first[16:]):
                self.bind_rejects += 1
                head = struct.pack(">IIII", 17, command_id | 0x80000000, ESME_RBINDFAIL, sequence)
                writer.write(head + b"\0")
                await writer.drain()
                return
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self._inner_port)
            self._connections.add(upstream)
            upstream.write(first)
            outstanding: set[int] = set()
            pumps = [
                asyncio.ensure_future(self._pump(reader, upstream, outstanding, from_client=True)),
                asyncio.ensure_future(
                    self._pump(up_reader, writer, outstanding, from_client=False)
                ),
            ]
            _done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pending:
                pump.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            for side in (writer, upstream):
                if side is not None:
                    self._connections.discard(side)
                    side.close()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        outstanding: set[int],
        *,
        from_client: bool,
    ) -> None:
        # Bytes go through as read (one send per read, not per PDU); headers are only watched.
        buffer = b""
        while chunk := await source.read(65536):
            if sink.transport.is_closing():
                return
            sink.write(chunk)
            buffer += chunk
            offset = 0
            while len(buffer) - offset >= 16:
                length, command_id, _status, sequence = struct.unpack_from(">IIII", buffer, offset)
                if length < 16:
                    return  # not SMPP: drop the connection
                if len(buffer) - offset < length:
                    break
                offset += length
                if from_client and command_id == _SUBMIT_SM:
                    outstanding.add(sequence)
                    self.max_outstanding = max(self.max_outstanding, len(outstanding))
                elif not from_client and command_id == _SUBMIT_SM_RESP:
                    outstanding.discard(sequence)
            buffer = buffer[offset:]
            if sink.transport.get_write_buffer_size() > 65536:
                await sink.drain()

    # --- SMSC behaviour -------------------------------------------------------------------
    async def _events(self, server: smpp34.Server) -> None:
        while True:
            event = await server.next()
            if isinstance(event, smpp34.Esme):
                self.binds += 1
                self._sessions[event.session_id] = event
                waiting, self._undelivered = self._undelivered, []
                for *receipt, stat in waiting:
                    self._spawn(self._send_receipt(*receipt, stat=stat, delay=0.0))
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._on_submit(event)
            elif isinstance(event, smpp34.Unbound):
                self._sessions.pop(event.session_id, None)

    def _status_for(self, destination: str) -> int:
        key = destination if destination in self._rejections else "*"
        status, count = self._rejections.get(key, (ESME_ROK, None))
        if status != ESME_ROK and count is not None:
            if count <= 1:
                del self._rejections[key]
            else:
                self._rejections[key] = (status, count - 1)
        return status

    def _on_submit(self, event: smpp34.SubmitSmEvent) -> None:
        status = self._status_for(event.destination_addr)
        data = event.short_message
        udh, body = _split_udh(data) if event.esm_class & 0x40 and data else (None, data)
        record = SubmitRecord(
            session_id=event.session_id,
            source=event.source_addr,
            destination=event.destination_addr,
            source_ton=event.source_addr_ton,
            source_npi=event.source_addr_npi,
            dest_ton=event.dest_addr_ton,
            dest_npi=event.dest_addr_npi,
            data_coding=event.data_coding,
            esm_class=event.esm_class,
            registered_delivery=event.registered_delivery,
            udh=udh,
            text=_decode(body, event.data_coding),
            message_id=f"{next(self._ids):010X}" if status == ESME_ROK else "",
            status=status,
        )
        self.submits.append(record)
        if self._log is not None:
            self._log.write(json.dumps(vars(record)) + "\n")
            self._log.flush()  # another process counts the lines as they come
        if self.resp_delay:
            self._spawn(self._answer_later(event, record))
        else:
            self._answer(event, record)
        if status == ESME_ROK:
            self._complete(record, body)

    async def _answer_later(self, event: smpp34.SubmitSmEvent, record: SubmitRecord) -> None:
        await asyncio.sleep(self.resp_delay)
        self._answer(event, record)

    def _answer(self, event: smpp34.SubmitSmEvent, record: SubmitRecord) -> None:
        with contextlib.suppress(Exception):  # the session may have gone meanwhile
            if record.status == ESME_ROK:
                event.accept(record.message_id)
            else:
                event.reject(record.status)
        if record.status == ESME_ROK and record.registered_delivery & 0x01:
            # A real SMSC sends one receipt per submit_sm that asked for one.
            stat = "UNDELIV" if record.destination in self.undeliverable else "DELIVRD"
            receipt = (record.session_id, record.source, record.destination, record.message_id)
            self._spawn(self._send_receipt(*receipt, stat=stat, delay=self.receipt_delay))

    def _complete(self, record: SubmitRecord, body: bytes) -> None:
        if record.udh is None or record.udh[1] <= 1:
            parts, joined = [record], body
        else:
            key = (record.session_id, record.source, record.destination, record.udh[0])
            partial = self._partials.setdefault(key, {})
            partial[record.udh[2]] = record
            self._part_bytes[id(record)] = body
            if len(partial) < record.udh[1]:
                return
            del self._partials[key]
            parts = [partial[number] for number in sorted(partial)]
            joined = b"".join(self._part_bytes.pop(id(part)) for part in parts)
        self.messages.append(
            MessageRecord(
                source=record.source,
                destination=record.destination,
                data_coding=record.data_coding,
                text=_decode(joined, record.data_coding),
                parts=len(parts),
                message_ids=[part.message_id for part in parts],
            )
        )

    def _esmes(self, preferred: str | None = None) -> list[smpp34.Esme]:
        sessions = list(reversed(self._sessions.values()))  # newest bind first
        if preferred in self._sessions:
            sessions.insert(0, self._sessions[preferred])
        return [esme for esme in sessions if esme.can_receive]

    async def _send_receipt(
        self,
        session_id: str,
        source: str,
        destination: str,
        message_id: str,
        *,
        stat: str = "DELIVRD",
        delay: float,
        attempt: int = 1,
    ) -> None:
        await asyncio.sleep(delay)
        now = datetime.now(UTC).strftime("%y%m%d%H%M")
        delivered = stat == "DELIVRD"
        text = (
            f"id:{message_id} sub:001 dlvrd:{'001' if delivered else '000'} submit date:{now} "
            f"done date:{now} stat:{stat} err:{'000' if delivered else '001'} text:"
        )
        tlvs = [
            smpp34.Tlv(_TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\0"),
            smpp34.Tlv(_TLV_MESSAGE_STATE, bytes([2 if delivered else 5])),
        ]
        receipt = (session_id, source, destination, message_id)
        for esme in self._esmes(session_id):
            try:
                resp = await asyncio.wait_for(
                    esme.deliver_sm(
                        source,  # back to the message's sender
                        text.encode("ascii"),
                        source_addr=destination,
                        source_addr_ton=1,
                        source_addr_npi=1,
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        esm_class=0x04,
                        tlvs=tlvs,
                    ),
                    timeout=10,
                )
            except Exception:
                continue
            self.receipts_acked.append((message_id, resp.command_status))
            if resp.command_status != ESME_ROK and attempt < _RECEIPT_ATTEMPTS:
                # The ESME could not store it: try again later, as SMSCs do.
                self._spawn(
                    self._send_receipt(
                        *receipt, stat=stat, delay=self.receipt_retry_delay, attempt=attempt + 1
                    )
                )
            return
        self._undelivered.append((*receipt, stat))  # no bind now: send when one comes

    async def asend_mo(
        self, source: str, destination: str, text: str, timeout: float = 5.0
    ) -> list[int]:
        deadline = time.monotonic() + timeout
        while not self._esmes():
            if time.monotonic() > deadline:
                raise TimeoutError("no ESME bound to receive the message")
            await asyncio.sleep(0.01)
        esme = self._esmes()[0]
        texts = segments.split(text)
        gsm = segments.is_gsm7(text)
        reference = next(self._references) % 256
        statuses: list[int] = []
        for number, part in enumerate(texts, start=1):
            udh = bytes((5, 0, 3, reference, len(texts), number)) if len(texts) > 1 else b""
            body = segments.encode_gsm7(part) if gsm else part.encode("utf-16-be")
            resp = await asyncio.wait_for(
                esme.deliver_sm(
                    destination.lstrip("+"),
                    udh + body,
                    source_addr=source.lstrip("+"),
                    source_addr_ton=1,
                    source_addr_npi=1,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    esm_class=0x40 if udh else 0,
                    data_coding=0 if gsm else 8,
                ),
                timeout=max(0.1, deadline - time.monotonic()),
            )
            self.mo_acked.append((source, destination, resp.command_status))
            statuses.append(resp.command_status)
        return statuses


async def _main(arguments: argparse.Namespace) -> None:
    peer = SmppPeer(
        port=arguments.port,
        system_id=arguments.system_id,
        password=arguments.password,
        log_path=arguments.log,
        resp_delay=arguments.resp_delay,
        receipt_delay=arguments.receipt_delay,
        undeliverable=arguments.undeliverable,
    )
    await peer.astart()
    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stopped.set)
    print(f"smpp_peer listening on 127.0.0.1:{peer.port}", flush=True)
    await stopped.wait()
    await peer.astop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A test SMSC (SMPP 3.4) on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=2775, help="0 picks a free port")
    parser.add_argument("--log", help="append one JSON line per submit_sm to this file")
    parser.add_argument("--system-id", help="accept only this system_id")
    parser.add_argument("--password", help="accept only this password")
    parser.add_argument("--resp-delay", type=float, default=0.0)
    parser.add_argument("--receipt-delay", type=float, default=0.0)
    parser.add_argument("--undeliverable", action="append", default=[])
    asyncio.run(_main(parser.parse_args()))
    # Skip interpreter finalization: smpp34's Tokio threads may still hand a result to Python
    # then, which aborts the process (PyGILState_Release while finalizing). All is closed.
    sys.stdout.flush()
    os._exit(0)

"""Spool's SIP edge for tests (Kamailio with docker/kamailio/kamailio.cfg on a free loopback
port), and trunks calling into it: sipp running tests/pstn/sipp/uac_call.xml (answered calls,
echoing what it hears), and `invite()`, a bare UDP INVITE that returns the final status (for
calls the edge or Spool refuses).

    with run_edge() as edge:          # edge.address == "127.0.0.1:PORT"
        code = invite(edge.address, "+15550001111")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apps.core import kamailio, rtpengine
from tests.pstn.rtp_pcap import write_keys

SCENARIOS = Path(__file__).parent / "sipp"


@dataclass
class Edge:
    address: str  # host:port
    pid: int
    relay_pid: int | None = None  # its rtpengine's, when it relays trunks' audio
    dtmf_log: str = ""  # host:port where that rtpengine reports keys
    tls_address: str = ""  # host:port of its TLS listener, with `tls`


def require_kamailio() -> None:
    import pytest

    if kamailio.kamailio_binary() is None:
        message = "Kamailio not installed: apt-get install kamailio"
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def run_edge(
    *,
    loopback: bool = False,
    relay: bool = False,
    tls: kamailio.SipTls | None = None,
    secret: str = "",
) -> Iterator[Edge]:
    """Start Kamailio (taking the loopback carrier's calls with `loopback`; relaying trunks'
    audio through an rtpengine of its own with `relay`, as `serve` does; taking TLS with `tls`;
    knowing Spool's SIP by `secret`, settings.SIP_EDGE_SECRET unless given) and wait until it
    answers OPTIONS; stop them (by PID) on exit."""
    from django.conf import settings

    secret = secret or settings.SIP_EDGE_SECRET
    folder = Path(tempfile.mkdtemp(prefix="spool-kamailio-"))
    process: subprocess.Popen[bytes] | None = None
    relay_process: subprocess.Popen[bytes] | None = None
    try:
        socket_ = dtmf_log = ""
        if relay:
            ng_port = rtpengine.free_udp_port()
            dtmf_log = f"127.0.0.1:{rtpengine.free_udp_port()}"
            argv = rtpengine.command(folder / "rtpengine", "127.0.0.1", ng_port, dtmf_log)
            relay_process = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            socket_ = f"udp:127.0.0.1:{ng_port}"
        for _ in range(5):  # a port free a moment ago may be taken when Kamailio binds it
            port = free_udp_port()
            argv = kamailio.command(
                folder,
                "127.0.0.1",
                port,
                "127.0.0.1",
                secret,
                loopback=loopback,
                rtpengine=socket_,
                tls=tls,
            )
            process = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=open(folder / "kamailio.log", "wb"),
                start_new_session=True,  # its workers in its group: _stop ends them all
            )
            deadline = time.monotonic() + 10
            while process.poll() is None and time.monotonic() < deadline:
                if options(f"127.0.0.1:{port}") == 200:
                    relay_pid = relay_process.pid if relay_process is not None else None
                    tls_address = f"127.0.0.1:{tls.port}" if tls is not None else ""
                    yield Edge(f"127.0.0.1:{port}", process.pid, relay_pid, dtmf_log, tls_address)
                    return
                time.sleep(0.1)
            _stop(process)
        log = (folder / "kamailio.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Kamailio did not start:\n{log}")
    finally:
        for started in (process, relay_process):
            if started is not None:
                _stop(started)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # Kamailio's workers can outlive its main process: they lead no group of their own, so
    # the one started with start_new_session ends them (nothing when there are none).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _request(address: str, text: str, timeout: float) -> int:
    """Send one SIP request over UDP; the final status (0 if none came in time)."""
    host, port = address.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        sock.settimeout(0.5)
        payload = text.replace("LOCALPORT", str(local)).encode()
        deadline = time.monotonic() + timeout
        sent_at = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() - sent_at > 1.0:  # UDP: send again until something answers
                sock.sendto(payload, (host, int(port)))
                sent_at = time.monotonic()
            try:
                data = sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                continue
            status = int(data.split(" ", 2)[1])
            if status >= 200:
                return status
            sent_at = float("inf")  # a provisional answer: it was heard
    return 0


def options(address: str, timeout: float = 1.0) -> int:
    branch = uuid.uuid4().hex
    return _request(
        address,
        f"OPTIONS sip:{address} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:LOCALPORT;branch=z9hG4bK{branch}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={branch[:8]}\r\nTo: <sip:{address}>\r\n"
        f"Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n",
        timeout,
    )


def invite(
    address: str,
    number: str,
    caller: str = "+15559990000",
    timeout: float = 10,
    *,
    host: str = "",
    headers: str = "",
) -> int:
    """A call to `number` (at `host`, the edge's own `address` unless given) from `caller`,
    offering PCMA, sent to `address` with `headers` added; the final status it got."""
    branch = uuid.uuid4().hex
    host = host or address
    sdp = (
        "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    )
    return _request(
        address,
        f"INVITE sip:{number}@{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:LOCALPORT;branch=z9hG4bK{branch}\r\n"
        f"From: <sip:{caller}@127.0.0.1:LOCALPORT>;tag={branch[:8]}\r\n"
        f"To: <sip:{number}@{host}>\r\nCall-ID: {branch}@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:{caller}@127.0.0.1:LOCALPORT>\r\nMax-Forwards: 70\r\n{headers}"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}",
        timeout,
    )


def sipp_call(
    address: str, number: str, workdir: Path, *, seconds: float = 4.0, keys: str = ""
) -> subprocess.Popen[bytes]:
    """sipp calling `number` through the edge (uac_call.xml): once answered it echoes what it
    hears for `seconds`, then hangs up; with `keys`, it offers RFC 2833 and presses them instead
    (uac_keys.xml: 3 s on, as telephone-events). The caller stops it (by PID) if it is still
    running."""
    scenario = "uac_keys.xml" if keys else "uac_call.xml"
    if keys:
        write_keys(workdir / "keys.pcap", keys)
    command = ["sipp", "-sf", str(SCENARIOS / scenario), "-s", number, address]
    command += ["-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1"]
    command += ["-mp", str(free_udp_port()), "-m", "1", "-d", str(int(seconds * 1000))]
    command += [] if keys else ["-rtp_echo"]
    command += ["-nostdin", "-timeout", "60", "-timeout_error"]
    command += ["-trace_msg", "-message_file", str(workdir / f"sipp-{uuid.uuid4().hex[:6]}.log")]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
    )

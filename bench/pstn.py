"""Phone calls over SIP trunks: how fast they set up, and how many one box bridges with audio
flowing, beside the bare engines (Janus, Kamailio, sipp) doing the same in the same run.

(a) Outbound setup: a Python call agent (apps/calls/agent.py, sending a 440 Hz tone) calls
`4:+15550001111` through a resource's trunk pointed at sipp playing the carrier's far end on
loopback (tests/pstn/sipp/uas_echo.xml: 180 at once, 200 OK 300 ms later, then it echoes the
audio it receives). Timed from the client's invite until the call is Connected (the far end's
200 OK) and until the caller first hears sound (its own tone, echoed), N calls one after the
other. Both go through a SIP edge (Kamailio, relaying the audio through rtpengine when it is
installed), as `serve` places trunk calls. Bare: a script drives a Janus of its own as the
media process does (an AudioBridge room, a phone leg through the SIP plugin and a bare edge to
the same far end, then an aiortc peer sending the same tone joins the room), timed from the
room's creation to the 200 OK and to the echo heard.
The far end keeps its 300 ms of ringing: when it answers within a few ms, the SIP plugin's
"accepted" event (which carries the "call" request's transaction) can reach apps/calls/sfu.py
after the request's answer but before its caller has taken it, and is dropped; the call is
then never seen as answered.

(b) Inbound setup: a small SIP caller in this process (a phone's trunk: INVITE offering PCMA,
ACK, BYE; it echoes the RTP it gets) calls one of the resource's numbers at Spool's SIP edge
(Kamailio); the number goes to an identity the built-in IVR answers. Timed from the INVITE to
the 200 OK and to the first RTP packet with sound (the IVR's menu), N calls one after the
other. Bare, through a Kamailio of its own with the same configuration: a script registers as
Spool's line in the bare Janus (apps/automation/sip_line.py), accepts each call into an
AudioBridge room and plays the same menu at once; and the SIP edge alone: Kamailio handing
the INVITE to a sipp registered as the line (INVITE to 200 OK only).

(c) Concurrent inbound calls: sipp (tests/pstn/sipp/uac_call.xml, its media pointed at an RTP
endpoint in this process that counts and echoes each call's packets) places K calls at 10/s
to a number whose calls go to the application (the official Call Automation SDK in this
process, with its Event Grid and callback receivers): it answers each IncomingCall and, on
CallConnected, plays a spoken prompt in a loop. Per step: calls answered (sipp's count) and
their INVITE -> 200 OK p50/p99 (sipp's -trace_rtt), calls whose audio flowed during the window
(at least 90% of 50 packets/s reached the phone, some with sound), and the CPU of every
process `manage.py serve` runs (Janus, Kamailio, the rest: web, media, worker, beat, Redis)
over the window, as % of one core per flowing call. Bare: the same sipp calls through the bare
Kamailio to the bare line, which accepts each into a room and loops the same prompt; the CPU
of Janus and Kamailio. K steps up until a call's audio does not flow. The load generators
(sipp, the RTP endpoint, the application) share the two cores and are not counted (the
`gen%` column is this process's share).

    .venv/bin/python bench/pstn.py [--calls 50] [--steps 5,10,20,40] [--seconds 6]
        [--smoke] [--json PATH]

Prints figures and one JSON line; exits non-zero only when something could not be set up. With
--json PATH (or SPOOL_BENCH_JSON) its headline figures go to that file too
(bench/bench_results.py); --smoke is the CI-safe run: 1 call per figure, one step of 1 call,
1 s windows, 0.5 s between steps, 1 s of slack for sipp's calls to connect.
Every process it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import csv
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from aiortc import (  # noqa: E402
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from apps.calls.agent import CallAgent, ToneTrack, offer_loopback  # noqa: E402
from bench import bench_results, tokens  # noqa: E402
from bench.calls import cpu_seconds  # noqa: E402
from bench.chat import finite, percentile  # noqa: E402
from tests.automation.tones import alaw_decode  # noqa: E402

SCENARIOS = ROOT / "tests" / "pstn" / "sipp"
PHONE = "+15550001111"  # called out
CALLER = "+15559990000"  # calling in (uac_call.xml's From too)
FQDN = "sbc.carrier.test"
PROMPT = "Welcome to Spool. Press one for sales, two for support."  # the application's
LOUD = 1000  # a frame (or an RTP packet) whose peak is above this carries sound
FULL_RATE = 50.0  # frames (packets) per second of 20 ms audio
FLOWING = 0.9  # a call whose audio flows gets at least this share of FULL_RATE
CALL_RATE = 10  # calls per second sipp places in a step
SETTLE = 2.0  # seconds between steps
RAMP_SLACK = 3.0  # seconds, beyond the calls' placing, for them all to connect
TIMEOUT = 20.0  # seconds for a call to connect or to be heard
# Seconds a call in stays up (from its INVITE): calls hung up within ~50 ms of their answer,
# back to back, leave Janus's SIP plugin without an idle line for a second or two (486).
HOLD = 0.5
# A-law codes of samples no louder than LOUD: a packet of only these is silence.
QUIET = bytes(
    code for code, value in enumerate(alaw_decode(bytes(range(256)))) if abs(value) <= LOUD
)


BEGAN = time.monotonic()


def say(text: str) -> None:
    """A progress line, with the seconds since the start."""
    print(f"  [{time.monotonic() - BEGAN:4.0f} s] {text}", flush=True)


class SetupError(Exception):
    """Something the measurement needs could not be started."""


def peak(frame: Any) -> int:
    samples = array.array("h", bytes(frame.planes[0]))
    return max((abs(s) for s in samples), default=0)


@dataclass
class Ears:
    """What one WebRTC caller heard: frames, and when it first heard sound."""

    frames: int = 0
    heard_at: float | None = None

    def hear(self, frame: Any) -> None:
        self.frames += 1
        if self.heard_at is None and peak(frame) > LOUD:
            self.heard_at = time.perf_counter()


async def listen(track: MediaStreamTrack, ears: Ears) -> None:
    while True:
        try:
            frame = await track.recv()
        except Exception:  # the track ended with the call
            return
        ears.hear(frame)


class Caller(CallAgent):
    """A call agent that keeps what it hears in `ears` (a new Ears per call)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ears = Ears()

    async def _count(self, key: str, track: MediaStreamTrack) -> None:
        await listen(track, self.ears)


# --- The phones' side: RTP and SIP -------------------------------------------------------------
@dataclass
class Stream:
    """The RTP one call sent to the phone (by its source address)."""

    packets: int = 0
    loud: int = 0
    first_at: float = 0.0
    first_loud_at: float | None = None
    last_at: float = 0.0


class RtpPhones(asyncio.DatagramProtocol):
    """Where phones' RTP goes: counts each source's G.711 packets (and those with sound) and
    echoes them back to it, as sipp's -rtp_echo does."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, int], Stream] = {}
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2 or data[1] & 0x7F not in (0, 8):
            return  # not G.711 RTP
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= offset + 4:  # a header extension
            offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
        now = time.perf_counter()
        stream = self.streams.setdefault((addr[0], addr[1]), Stream(first_at=now))
        stream.packets += 1
        stream.last_at = now
        if data[offset:].translate(None, QUIET):
            stream.loud += 1
            if stream.first_loud_at is None:
                stream.first_loud_at = now
        self.transport.sendto(data, addr)

    def active(self, within: float = 0.5) -> int:
        since = time.perf_counter() - within
        return sum(1 for stream in self.streams.values() if stream.last_at >= since)

    def counts(self) -> dict[tuple[str, int], tuple[int, int]]:
        return {key: (s.packets, s.loud) for key, s in self.streams.items()}


async def rtp_endpoint() -> tuple[RtpPhones, asyncio.DatagramTransport, int]:
    phones = RtpPhones()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: phones, local_addr=("127.0.0.1", 0)
    )
    return phones, transport, int(transport.get_extra_info("sockname")[1])


class SipSocket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.messages.put_nowait(data.decode(errors="replace"))


def header(message: str, name: str) -> list[str]:
    """The values of a SIP message's header `name`, in order (comma lists not split)."""
    found = []
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            found.append(value.strip())
    return found


def status_of(message: str) -> int:
    first = message.split("\r\n", 1)[0].split(" ")
    return int(first[1]) if first[0] == "SIP/2.0" and first[1].isdigit() else 0


@dataclass
class PhoneCallTimes:
    answered_ms: float | None = None  # INVITE -> 200 OK
    media_ms: float | None = None  # INVITE -> first RTP packet
    heard_ms: float | None = None  # INVITE -> first RTP packet with sound
    status: int = 0


async def phone_calls_in(
    edge: str, number: str, *, listen_for: float = TIMEOUT, hold: float = HOLD
) -> PhoneCallTimes:
    """A trunk's call to `number` through the SIP edge at `edge` (host:port): INVITE offering
    PCMA (retransmitted every 500 ms until answered), ACK, wait for sound (up to `listen_for`
    seconds), BYE once up for `hold` seconds."""
    loop = asyncio.get_running_loop()
    host, port = edge.rsplit(":", 1)
    target = (host, int(port))
    phones, rtp, rtp_port = await rtp_endpoint()
    sip = SipSocket()
    transport, _ = await loop.create_datagram_endpoint(lambda: sip, local_addr=("127.0.0.1", 0))
    local = int(transport.get_extra_info("sockname")[1])
    tag, call_id = uuid.uuid4().hex[:10], f"{uuid.uuid4().hex}@127.0.0.1"
    sender = f"<sip:{CALLER}@127.0.0.1:{local}>;tag={tag}"
    times = PhoneCallTimes()

    def request(method: str, uri: str, cseq: int, extra: str = "", body: str = "") -> str:
        branch = f"z9hG4bK{uuid.uuid4().hex}"
        return (
            f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};branch={branch}\r\n"
            f"From: {sender}\r\n{extra}Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Max-Forwards: 70\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )

    async def transact(text: str, cseq_method: str) -> str:
        """Send until a final answer to `cseq_method` comes (provisional ones stop resending)."""
        deadline = loop.time() + TIMEOUT
        resend = True
        while loop.time() < deadline:
            if resend:
                transport.sendto(text.encode(), target)
            try:
                message = await asyncio.wait_for(sip.messages.get(), 0.5)
            except TimeoutError:
                continue
            if not header(message, "CSeq")[0].endswith(cseq_method):
                continue
            if status_of(message) >= 200:
                return message
            resend = False
        return ""

    sdp = (
        "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    )
    uri = f"sip:{number}@{edge}"
    invite = request(
        "INVITE",
        uri,
        1,
        f"To: <{uri}>\r\nContact: <sip:{CALLER}@127.0.0.1:{local}>\r\n"
        "Content-Type: application/sdp\r\n",
        sdp,
    )
    try:
        started = time.perf_counter()
        answer = await transact(invite, "INVITE")
        times.status = status_of(answer)
        if not answer:
            return times
        to = header(answer, "To")[0]
        if times.status >= 300:  # ACK a refusal, hop by hop (same Via branch as the INVITE)
            via = header(invite, "Via")[0]
            transport.sendto(
                (
                    f"ACK {uri} SIP/2.0\r\nVia: {via}\r\nFrom: {sender}\r\nTo: {to}\r\n"
                    f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                target,
            )
            return times
        times.answered_ms = (time.perf_counter() - started) * 1000
        contact = re.search(r"<([^>]+)>", header(answer, "Contact")[0])
        remote = contact.group(1) if contact else uri
        routes = [r for value in header(answer, "Record-Route") for r in value.split(",")]
        route = "".join(f"Route: {r.strip()}\r\n" for r in reversed(routes))
        in_dialog = f"{route}To: {to}\r\n"
        transport.sendto(request("ACK", remote, 1, in_dialog).encode(), target)
        while phones.streams == {} or all(s.first_loud_at is None for s in phones.streams.values()):
            if time.perf_counter() - started > listen_for:
                break
            await asyncio.sleep(0.002)
        if phones.streams:
            first = min(s.first_at for s in phones.streams.values())
            times.media_ms = (first - started) * 1000
        heard = [s.first_loud_at for s in phones.streams.values() if s.first_loud_at is not None]
        if heard:
            times.heard_ms = (min(heard) - started) * 1000
        await asyncio.sleep(hold - (time.perf_counter() - started))
        await transact(request("BYE", remote, 2, in_dialog), "BYE")
        return times
    finally:
        transport.close()
        rtp.close()


# --- Processes: sipp, Kamailio, CPU ------------------------------------------------------------
def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def udp_bound(port: int) -> bool:
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1].endswith(f":{port:04X}") for line in lines)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def scenario(
    folder: Path, name: str, *, ring: bool = True, record_route: bool = False, media_port: int = 0
) -> Path:
    """A copy of tests/pstn/sipp/`name` in `folder`: answering at once (`ring=False`: no pause
    before the 200 OK), keeping a proxy's Record-Route in its answers (`record_route`, for a
    far end behind Kamailio), its media at 127.0.0.1:media_port (when given) rather than
    sipp's own."""
    text = (SCENARIOS / name).read_text()
    if not ring:
        text = text.replace('  <pause milliseconds="300"/>\n', "")
    if record_route:
        text = text.replace("[last_Via:]\n", "[last_Via:]\n[last_Record-Route:]\n")
    if media_port:
        text = text.replace("c=IN IP[media_ip_type] [media_ip]", "c=IN IP4 127.0.0.1")
        text = text.replace("m=audio [media_port]", f"m=audio {media_port}")
    path = folder / f"{uuid.uuid4().hex[:6]}-{name}"
    path.write_text(text)
    return path


@contextlib.contextmanager
def far_end(scratch: Path, scenario_path: Path) -> Iterator[int]:
    """sipp answering every call with `scenario_path`, echoing their audio; yields its SIP
    port; stopped by PID on exit."""
    for _ in range(5):  # a port free a moment ago may be taken by the time sipp binds it
        port, media_port = free_udp_port(), free_udp_port()
        command = ["sipp", "-sf", str(scenario_path), "-i", "127.0.0.1", "-p", str(port)]
        command += ["-mi", "127.0.0.1", "-mp", str(media_port), "-rtp_echo", "-nostdin"]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=scratch
        )
        try:
            deadline = time.monotonic() + 10
            while process.poll() is None and not udp_bound(port):
                if time.monotonic() > deadline:
                    raise SetupError("sipp did not start")
                time.sleep(0.02)
            if process.poll() is None:
                yield port
                return
        finally:
            stop(process)
    raise SetupError("sipp could not bind its ports")


def start_sipp_calls(
    folder: Path, edge: str, number: str, calls: int, media_port: int, talk_ms: int
) -> subprocess.Popen[bytes]:
    """sipp placing `calls` calls to `number` at `edge`, CALL_RATE a second, all at once
    (uac_call.xml, its media at the RTP endpoint on `media_port`), each hanging up `talk_ms`
    after its answer; response times to folder/*_rtt.csv."""
    uac = scenario(folder, "uac_call.xml", media_port=media_port)
    command = ["sipp", "-sf", str(uac), "-s", number, edge, "-i", "127.0.0.1"]
    command += ["-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_udp_port())]
    command += ["-m", str(calls), "-l", str(calls), "-r", str(CALL_RATE), "-d", str(talk_ms)]
    command += ["-nostdin", "-timeout", str(talk_ms // 1000 + 60), "-timeout_error"]
    command += ["-trace_rtt", "-rtt_freq", "1"]
    with open(folder / "sipp.err", "ab") as errors:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=folder)


def response_times(folder: Path) -> list[float]:
    """INVITE -> 200 OK of each answered call, from sipp's -trace_rtt files in `folder` (ms)."""
    times = []
    for path in folder.glob("*_rtt.csv"):
        with path.open() as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                if row.get("response_time_ms"):
                    times.append(float(row["response_time_ms"]))
    return times


def register_line(edge: str, contact_port: int) -> None:
    """Register sip:spool@line at the Kamailio `edge` with the contact 127.0.0.1:contact_port
    (a sipp far end standing in for Spool's line)."""
    host, port = edge.rsplit(":", 1)
    tag = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        sock.settimeout(2)
        sock.sendto(
            (
                "REGISTER sip:line SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{tag}\r\n"
                f"From: <sip:spool@line>;tag={tag[:8]}\r\nTo: <sip:spool@line>\r\n"
                f"Call-ID: {tag}@127.0.0.1\r\nCSeq: 1 REGISTER\r\n"
                f"Contact: <sip:spool@127.0.0.1:{contact_port}>\r\nExpires: 600\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            (host, int(port)),
        )
        reply = sock.recv(65535).decode(errors="replace")
    if status_of(reply) != 200:
        raise SetupError(f"Kamailio refused the REGISTER: {reply[:200]}")


def tree(root_pid: int) -> dict[str, list[int]]:
    """The processes under `root_pid`, grouped: janus, kamailio (the edge: Kamailio and its
    rtpengine), spool (all the others)."""
    import psutil

    groups: dict[str, list[int]] = {"janus": [], "kamailio": [], "spool": []}
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            name = Path(child.cmdline()[0]).name
        except (psutil.Error, IndexError):
            continue
        group = {"janus": "janus", "kamailio": "kamailio", "rtpengine": "kamailio"}.get(name)
        groups[group or "spool"].append(child.pid)
    return groups


def kamailio_pids(pid: int) -> list[int]:
    import psutil

    return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(pid)
    return total


@dataclass
class Step:
    """One concurrency step: K calls placed; what was answered, flowed, and cost."""

    calls: int
    answered: int = 0
    setup_ms: list[float] = field(default_factory=list)  # INVITE -> 200 OK, from sipp
    rates: list[float] = field(default_factory=list)  # packets/s each call sent the phone
    loud: list[int] = field(default_factory=list)  # of them with sound
    cpu_percent: dict[str, float] = field(default_factory=dict)  # % of one core, by group
    load_generator_percent: float = 0.0  # this process: the RTP endpoint and the application

    @property
    def flowing(self) -> int:
        return sum(
            1
            for rate, loud in zip(self.rates, self.loud, strict=True)
            if rate >= FLOWING * FULL_RATE and loud
        )

    def per_call(self) -> float:
        return sum(self.cpu_percent.values()) / self.flowing if self.flowing else float("nan")


async def measure_step(
    step: Step,
    phones: RtpPhones,
    folder: Path,
    edge: str,
    number: str,
    media_port: int,
    groups: Any,
    seconds: float,
) -> None:
    """sipp places step.calls calls; once they all send audio (or the ramp's time is up), a
    window of `seconds`; then sipp hangs up and the step's figures are filled in."""
    ramp = step.calls / CALL_RATE + RAMP_SLACK
    talk_ms = int((ramp + 1.0 + seconds + 1.0) * 1000)
    # The calls of the step before have ended; a call that comes right after a burst of BYEs
    # may find no idle line in Janus's SIP plugin (486), with or without Spool: let it settle.
    await asyncio.sleep(SETTLE)
    phones.streams.clear()
    for _ in range(3):  # a port free a moment ago may be taken by the time sipp binds it
        sipp = start_sipp_calls(folder, edge, number, step.calls, media_port, talk_ms)
        await asyncio.sleep(0.5)
        if sipp.poll() is None or sipp.returncode == 0:
            break
    try:
        began = time.monotonic()
        while time.monotonic() - began < ramp:
            if phones.active() >= step.calls:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        pids = groups() if callable(groups) else groups
        cpu = {name: cpu_of(p) for name, p in pids.items()}
        own = cpu_seconds(os.getpid())
        counts = phones.counts()
        started = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - started
        step.cpu_percent = {
            name: (cpu_of(p) - cpu[name]) / elapsed * 100 for name, p in pids.items()
        }
        step.load_generator_percent = (cpu_seconds(os.getpid()) - own) / elapsed * 100
        for key, (packets, loud) in phones.counts().items():
            was = counts.get(key, (0, 0))
            step.rates.append((packets - was[0]) / elapsed)
            step.loud.append(loud - was[1])
        await asyncio.to_thread(sipp.wait, talk_ms / 1000 + 30)
    except subprocess.TimeoutExpired:
        pass
    finally:
        stop(sipp)
    step.setup_ms = response_times(folder)
    step.answered = len(step.setup_ms)
    if step.answered < step.calls:
        errors = (folder / "sipp.err").read_text(errors="replace").strip().splitlines()
        say(f"sipp exited with {sipp.returncode}: {' / '.join(errors[-3:])}")


# --- Spool -------------------------------------------------------------------------------------
@dataclass
class Spool:
    live: Any
    connection: str
    ivr_number: str  # its calls in go to the built-in IVR; the caller id of calls out
    app_number: str  # its calls in go to the application
    socket_url: str

    @property
    def edge(self) -> str:
        return f"127.0.0.1:{self.live.env['SPOOL_SIP_PORT']}"


def set_up_spool(live: Any, far_end_port: int) -> Spool:
    """A resource with two numbers, a trunk (enabled, to the far end on loopback, taking calls
    from loopback) and a route for +1; one number's calls go to an identity the built-in IVR
    answers, the other's to the application."""
    from azure.communication.phonenumbers.siprouting import (
        SipRoutingClient,
        SipTrunk,
        SipTrunkRoute,
    )

    connection = live.create_resource(f"bench-pstn-{os.getpid()}")
    ivr_number, app_number = live.give_number(connection), live.give_number(connection)
    client = SipRoutingClient.from_connection_string(connection, connection_verify=live.cert)
    client.set_trunks([SipTrunk(fqdn=FQDN, sip_signaling_port=far_end_port)])
    client.set_routes([SipTrunkRoute(name="us", number_pattern=r"^\+1\d{10}$", trunks=[FQDN])])
    ivr, _ = voip_user(live, connection)
    live.manage(
        "shell",
        "-c",
        "from apps.pstn.models import SipTrunk; from apps.numbers.models import PhoneNumber; "
        "from apps.accounts.models import CommunicationIdentity; "
        f"SipTrunk.objects.filter(fqdn='{FQDN}').update(enabled=True, address='127.0.0.1', "
        "allowed_networks=['127.0.0.1/32']); "
        f"CommunicationIdentity.objects.filter(pk='{ivr.rsplit('_', 1)[-1]}')"
        ".update(incoming_calls='ivr'); "
        f"PhoneNumber.objects.filter(number='{ivr_number}').update(inbound_destination='{ivr}'); "
        f"PhoneNumber.objects.filter(number='{app_number}')"
        ".update(inbound_destination='application')",
    )
    socket_url = live.http_url.replace("http://", "ws://") + "/ws/"
    return Spool(live, connection, ivr_number, app_number, socket_url)


def voip_user(live: Any, connection: str) -> tuple[str, str]:
    from azure.communication.identity import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )
    user, token = client.create_user_and_token(["voip"])
    return user.properties["id"], token.token


def wait_for_line(spool: Spool) -> None:
    """Until the media process's SIP line is registered at the edge (503 before)."""
    from tests.pstn.edge import invite

    deadline = time.monotonic() + 30
    seen = []
    while (status := invite(spool.edge, "+19999999999", timeout=2)) in (0, 503):
        seen.append(status)
        if time.monotonic() > deadline:
            log = (spool.live.data_dir / "serve.log").read_text(errors="replace")
            raise SetupError(
                f"Spool's SIP line did not register at its edge (answers {seen}); the end of "
                "its log:\n" + "\n".join(log.splitlines()[-40:])
            )
        time.sleep(0.5)


async def spool_outbound(spool: Spool, token: str, calls: int) -> dict[str, list[float]]:
    """(a) through Spool: invite -> Connected, invite -> first echoed sound, ms."""
    caller = Caller(spool.socket_url, token)
    await caller.connect()
    connected, heard = [], []
    try:
        for n in range(calls + 1):  # the first call warms up (not counted)
            caller.ears = Ears()
            started = time.perf_counter()
            await caller.call(f"4:{PHONE}", caller_id=spool.ivr_number)
            await caller.wait_state("Connected", timeout=TIMEOUT)
            up = time.perf_counter()
            while caller.ears.heard_at is None and time.perf_counter() - started < TIMEOUT:
                await asyncio.sleep(0.002)
            if n:
                connected.append((up - started) * 1000)
                if caller.ears.heard_at is not None:
                    heard.append((caller.ears.heard_at - started) * 1000)
            await caller.hang_up()
            await caller.wait_state("Disconnected", timeout=TIMEOUT)
    finally:
        await caller.close()
    return {"connected": connected, "heard": heard}


async def inbound_times(
    edge: str, number: str, calls: int, *, listen_for: float = TIMEOUT, hold: float = HOLD
) -> dict[str, list[float]]:
    """(b): `calls` calls in, one after the other (after one that warms up)."""
    answered, media, heard = [], [], []
    for n in range(calls + 1):
        times = await phone_calls_in(edge, number, listen_for=listen_for, hold=hold)
        if n and times.answered_ms is not None:
            answered.append(times.answered_ms)
            if times.media_ms is not None:
                media.append(times.media_ms)
            if times.heard_ms is not None:
                heard.append(times.heard_ms)
    return {"answered": answered, "media": media, "heard": heard}


class Application:
    """The resource's application: answers every IncomingCall and, once connected, plays
    PROMPT in a loop (the official SDK, with receivers on 127.0.0.1)."""

    def __init__(self, live: Any, connection: str) -> None:
        from azure.communication.callautomation import CallAutomationClient

        from tests.events.conftest import Receiver

        self.events, self.callbacks = Receiver(), Receiver()
        self.events.start()
        self.callbacks.start()
        slug = live.slug_of(connection)
        live.manage(
            "shell",
            "-c",
            "from apps.accounts.models import Resource; from apps.events import services; "
            f"s = services.create_subscription(Resource.objects.get(slug='{slug}'), "
            f"name='bench', endpoint_url='{self.events.url}', "
            "event_types=['Microsoft.Communication.IncomingCall']); "
            "services.validate_subscription(s.pk)",
        )
        self.client = CallAutomationClient.from_connection_string(
            connection, connection_verify=live.cert
        )
        self.failures = 0

    def stop(self) -> None:
        self.events.stop()
        self.callbacks.stop()

    async def run(self) -> None:
        """Answer and play until cancelled."""
        seen_events = seen_callbacks = 0
        tasks: set[asyncio.Task[None]] = set()
        while True:
            notifications = self.events.notifications
            for item in notifications[seen_events:]:
                for event in item.json:
                    tasks.add(asyncio.create_task(self._answer(event["data"])))
            seen_events = len(notifications)
            received = self.callbacks.received
            for item in received[seen_callbacks:]:
                for event in json.loads(item.body):
                    if event["type"].endswith(".CallConnected"):
                        connection_id = event["data"]["callConnectionId"]
                        tasks.add(asyncio.create_task(self._play(connection_id)))
            seen_callbacks = len(received)
            tasks = {task for task in tasks if not task.done()}
            await asyncio.sleep(0.01)

    async def _answer(self, data: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self.client.answer_call, data["incomingCallContext"], self.callbacks.url
            )
        except Exception:
            self.failures += 1

    async def _play(self, connection_id: str) -> None:
        from azure.communication.callautomation import TextSource

        call = self.client.get_call_connection(connection_id)
        try:
            await asyncio.to_thread(call.play_media, [TextSource(text=PROMPT)], loop=True)
        except Exception:
            self.failures += 1


async def spool_concurrent(
    spool: Spool, scratch: Path, steps: list[int], seconds: float
) -> list[Step]:
    """(c) through Spool: K calls in at once, answered by the application."""
    app = Application(spool.live, spool.connection)
    running = asyncio.create_task(app.run())
    phones, rtp, media_port = await rtp_endpoint()
    assert spool.live.process is not None
    root = spool.live.process.pid
    done = []
    try:
        for k in steps:
            folder = scratch / f"spool-{k}"
            folder.mkdir()
            step = Step(k)
            await measure_step(
                step, phones, folder, spool.edge, spool.app_number, media_port,
                lambda: tree(root), seconds,
            )  # fmt: skip
            done.append(step)
            say(f"Spool: {k} calls in, {step.answered} answered, {step.flowing} flowing")
            if step.flowing < k:
                break
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        rtp.close()
        app.stop()
    return done


# --- The bare engine: Janus driven by a script (apps/automation's drivers, no Spool) ------------
class BarePeer:
    """An aiortc peer sending a 440 Hz tone, keeping what it hears in `ears`."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(ToneTrack(440.0))
        self.ears = Ears()
        self.pc.on("track", lambda track: asyncio.ensure_future(listen(track, self.ears)))

    async def offer(self) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"type": "offer", "sdp": self.pc.localDescription.sdp}

    async def answer(self, jsep: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], jsep["type"]))


async def nothing(event: dict[str, Any]) -> None:
    pass


class BareCall:
    """One bridged phone call out in a bare Janus: a room, the phone leg placed through the
    SIP plugin to the far end (through the bare edge, as Spool's go through its own: its
    answer completing the leg), then the peer joining the room."""

    def __init__(self, janus_url: str, far_end_port: int, edge: str) -> None:
        from django.conf import settings

        from apps.automation.bridge import AudioBridgeRoom
        from apps.automation.sip import PhoneCall, Trunk

        self.trunk = Trunk("127.0.0.1", far_end_port, edge=edge, secret=settings.SIP_EDGE_SECRET)
        self.room = AudioBridgeRoom(janus_url, f"bench-{uuid.uuid4().hex[:10]}", nothing)
        self.phone = PhoneCall(janus_url, self._on_phone)
        self.peer = BarePeer()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answered_at: float | None = None

    async def _on_phone(self, event: dict[str, Any]) -> None:
        if event["kind"] in ("early_media", "answered") and "answer" in event:
            await self.room.complete_leg(f"4:{PHONE}", event["answer"])
        if event["kind"] == "answered":
            self.answered_at = time.perf_counter()
        await self.events.put(event)

    async def place(self) -> None:
        """Dial, wait for the answer, then join the peer. Raises TimeoutError, JanusError."""
        await self.room.open()
        offer = await self.room.join_offering(f"4:{PHONE}")
        await self.phone.dial(PHONE, CALLER, offer, [self.trunk])
        while self.answered_at is None:
            event = await asyncio.wait_for(self.events.get(), TIMEOUT)
            if event["kind"] == "ended":
                raise TimeoutError(f"the far end ended the call: {event}")
        answer = await self.room.join("8:acs:bench-peer", await self.peer.offer())
        await self.peer.answer(answer)

    async def end(self) -> None:
        with contextlib.suppress(Exception):
            await self.phone.hang_up()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                event = await asyncio.wait_for(self.events.get(), deadline - time.monotonic())
                if event["kind"] == "ended":
                    break
        await self.phone.close()
        await self.peer.pc.close()
        await self.room.close()


async def bare_outbound(
    janus_url: str, far_end_port: int, edge: str, calls: int
) -> dict[str, list[float]]:
    """(a) bare: room created -> far end answered, -> first echoed sound at the peer, ms."""
    connected, heard = [], []
    for n in range(calls + 1):
        call = BareCall(janus_url, far_end_port, edge)
        started = time.perf_counter()
        try:
            await call.place()
            while call.peer.ears.heard_at is None and time.perf_counter() - started < TIMEOUT:
                await asyncio.sleep(0.002)
            if n and call.answered_at is not None:
                connected.append((call.answered_at - started) * 1000)
                if call.peer.ears.heard_at is not None:
                    heard.append((call.peer.ears.heard_at - started) * 1000)
        finally:
            await call.end()
    return {"connected": connected, "heard": heard}


@contextlib.asynccontextmanager
async def bare_line(
    janus_url: str, edge: str, prompt: Path, *, loop: bool, max_calls: int = 50
) -> Any:
    """A script registered as the line in the bare Janus: it accepts each call into a room of
    its own and plays `prompt` there at once (in a loop, with `loop`)."""
    from apps.automation.bridge import AudioBridgeRoom
    from apps.automation.sip_line import IncomingPhoneCall, SipLine

    rooms: dict[str, AudioBridgeRoom] = {}

    async def on_call(call: IncomingPhoneCall) -> None:
        room = AudioBridgeRoom(janus_url, f"bench-{uuid.uuid4().hex[:10]}", nothing)
        rooms[call.sip_call_id] = room

        async def on_event(event: dict[str, Any]) -> None:
            if event["kind"] == "ended":
                closing = rooms.pop(call.sip_call_id, None)
                if closing is not None:
                    await closing.close()

        call.on_event = on_event
        await room.open()
        assert call.offer is not None
        await call.accept(await room.join(call.raw_id, call.offer, codec="pcma"))
        await room.play(prompt, "prompt", loop=loop)

    line = SipLine(janus_url, edge, on_call, max_calls=max_calls)
    running = asyncio.create_task(line.run())
    try:
        await asyncio.wait_for(line.registered.wait(), TIMEOUT)
        yield line
    finally:
        running.cancel()
        # SipLine.run() has been seen to hang in its way out (ending its Janus session), now and
        # then: the figures are taken, so go on without it rather than wait for ever.
        if not (await asyncio.wait({running}, timeout=TIMEOUT))[0]:
            say(f"the bare SIP line did not stop within {TIMEOUT:g} s after it was cancelled")
        for room in list(rooms.values()):
            await room.close()


async def bare_inbound(janus_url: str, edge: str, prompt: Path, calls: int) -> dict[str, Any]:
    async with bare_line(janus_url, edge, prompt, loop=False):
        return await inbound_times(edge, PHONE, calls)


async def bare_concurrent(
    janus: Any, edge: Any, scratch: Path, prompt: Path, steps: list[int], seconds: float
) -> list[Step]:
    """(c) bare: K calls in at once through Kamailio to the bare line, the prompt looped."""
    phones, rtp, media_port = await rtp_endpoint()
    relay = [edge.relay_pid] if edge.relay_pid is not None else []
    groups = {"janus": [janus.pid], "kamailio": [*kamailio_pids(edge.pid), *relay]}
    done = []
    try:
        async with bare_line(janus.url, edge.address, prompt, loop=True, max_calls=max(steps) + 10):
            for k in steps:
                folder = scratch / f"bare-{k}"
                folder.mkdir()
                step = Step(k)
                await measure_step(
                    step, phones, folder, edge.address, PHONE, media_port, groups, seconds
                )
                done.append(step)
                say(f"bare: {k} calls in, {step.answered} answered, {step.flowing} flowing")
    finally:
        rtp.close()
    return done


def sipp_line_times(scratch: Path, edge: str, calls: int) -> list[float]:
    """INVITE -> 200 OK through Kamailio alone, to a sipp far end registered as the line."""
    line_end = scenario(scratch, "uas_echo.xml", ring=False, record_route=True)
    with far_end(scratch, line_end) as port:
        register_line(edge, port)
        times = asyncio.run(inbound_times(edge, PHONE, calls, listen_for=0, hold=0))
    return times["answered"]


# --- Running it all ----------------------------------------------------------------------------
def stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99), "n": len(values)}


def run_spool(
    args: argparse.Namespace, conftest: Any, scratch: Path, steps: list[int]
) -> dict[str, Any]:
    extra = {
        **tokens.serve_sizes(),
        **tokens.QUOTA_COUNTED,
        # Limits the steps must not reach: the resource's phone calls, the SIP line's.
        "SPOOL_PSTN_MAX_CALLS": str(max(steps) + 10),
        "SPOOL_SIP_LINE_MAX_CALLS": str(max(steps) + 10),
    }
    live, cleanups = conftest.start_spool(extra)
    started: set[int] = set()
    try:
        import psutil

        assert live.process is not None
        with far_end(scratch, scenario(scratch, "uas_echo.xml")) as port:
            spool = set_up_spool(live, port)
            _, token = voip_user(live, spool.connection)
            outbound = asyncio.run(spool_outbound(spool, token, args.calls))
            say("Spool: calls out measured")
            wait_for_line(spool)
            inbound = asyncio.run(inbound_times(spool.edge, spool.ivr_number, args.calls))
            say("Spool: calls in measured")
            concurrent = asyncio.run(spool_concurrent(spool, scratch, steps, args.seconds))
            started = {child.pid for child in psutil.Process(live.process.pid).children(True)}
    finally:
        conftest.stop_spool(live, cleanups)
        for pid in started:  # serve stops its children; any left are ours to stop
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return {"outbound": outbound, "inbound": inbound, "concurrent": concurrent}


def rtpengine_installed() -> bool:
    from apps.core import rtpengine

    return rtpengine.rtpengine_binary() is not None


def run_bare(args: argparse.Namespace, scratch: Path, steps: list[int]) -> dict[str, Any]:
    from apps.automation import audio, ivr
    from tests.janus import run_janus
    from tests.pstn.edge import run_edge

    menu, prompt = audio.speech_file(ivr.WELCOME), audio.speech_file(PROMPT)
    # Relaying trunks' audio through rtpengine, as serve's edge does when it is installed.
    relay = rtpengine_installed()
    with far_end(scratch, scenario(scratch, "uas_echo.xml")) as port, run_janus() as janus:
        with run_edge(relay=relay) as edge:
            outbound = asyncio.run(bare_outbound(janus.url, port, edge.address, args.calls))
            say("bare: calls out measured")
            inbound = asyncio.run(bare_inbound(janus.url, edge.address, menu, args.calls))
            say("bare: calls in measured")
            concurrent = asyncio.run(
                bare_concurrent(janus, edge, scratch, prompt, steps, args.seconds)
            )
    with run_edge() as edge:
        sipp_line = sipp_line_times(scratch, edge.address, args.calls)
    say("bare: calls in through Kamailio alone measured")
    return {
        "outbound": outbound,
        "inbound": inbound,
        "sipp_line": sipp_line,
        "concurrent": concurrent,
    }


def report(spool: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    print()
    print(
        "Call setup, one call at a time (ms)                                  n      p50      p99"
    )
    rows = [
        ("out, Spool: invite -> Connected (the far end's 200 OK)", spool["outbound"]["connected"]),
        ("out, bare Janus: room created -> 200 OK", bare["outbound"]["connected"]),
        ("out, Spool: invite -> first audio (the echo heard)", spool["outbound"]["heard"]),
        ("out, bare Janus: room created -> first audio", bare["outbound"]["heard"]),
        ("in, Spool (edge -> built-in IVR): INVITE -> 200 OK", spool["inbound"]["answered"]),
        ("in, bare Kamailio + Janus line: INVITE -> 200 OK", bare["inbound"]["answered"]),
        ("in, Kamailio -> sipp as the line: INVITE -> 200 OK", bare["sipp_line"]),
        ("in, Spool: INVITE -> first RTP packet at the phone", spool["inbound"]["media"]),
        ("in, bare: INVITE -> first RTP packet at the phone", bare["inbound"]["media"]),
        ("in, Spool: INVITE -> first audio (the IVR's menu)", spool["inbound"]["heard"]),
        ("in, bare: INVITE -> first audio (the menu, played on accept)", bare["inbound"]["heard"]),
    ]
    for name, values in rows:
        s = stats(values)
        print(f"  {name:<64} {s['n']:>3} {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f}")
    print()
    print("Concurrent calls in; 'flow': the phone got >= 90% of 50 packets/s, some with sound")
    print("(it echoes them back); CPU: % of one core; p50/p99: INVITE -> 200 OK, ms")
    print(
        "  calls | Spool: ans flow  p50  p99  janus kamailio spool %/call gen% |"
        " bare: ans flow  p50  p99  janus kamailio %/call"
    )
    for step, bare_step in zip(spool["concurrent"], bare["concurrent"], strict=False):
        a, b = step, bare_step
        sa, sb = stats(a.setup_ms), stats(b.setup_ms)
        print(
            f"  {a.calls:>5} | {a.answered:>10} {a.flowing:>4} {sa['p50_ms']:>4.0f}"
            f" {sa['p99_ms']:>4.0f} {a.cpu_percent['janus']:>6.1f}"
            f" {a.cpu_percent['kamailio']:>8.1f} {a.cpu_percent['spool']:>5.1f}"
            f" {a.per_call():>6.2f} {a.load_generator_percent:>4.0f} |"
            f" {b.answered:>8} {b.flowing:>4} {sb['p50_ms']:>4.0f} {sb['p99_ms']:>4.0f}"
            f" {b.cpu_percent['janus']:>6.1f} {b.cpu_percent['kamailio']:>8.1f}"
            f" {b.per_call():>6.2f}"
        )
    return {
        "out_connected": stats(spool["outbound"]["connected"]),
        "out_connected_bare": stats(bare["outbound"]["connected"]),
        "out_audio": stats(spool["outbound"]["heard"]),
        "out_audio_bare": stats(bare["outbound"]["heard"]),
        "in_200": stats(spool["inbound"]["answered"]),
        "in_200_bare": stats(bare["inbound"]["answered"]),
        "in_200_kamailio": stats(bare["sipp_line"]),
        "in_media": stats(spool["inbound"]["media"]),
        "in_media_bare": stats(bare["inbound"]["media"]),
        "in_audio": stats(spool["inbound"]["heard"]),
        "in_audio_bare": stats(bare["inbound"]["heard"]),
        "concurrent": [step_json(s) for s in spool["concurrent"]],
        "concurrent_bare": [step_json(s) for s in bare["concurrent"]],
    }


def step_json(step: Step) -> dict[str, Any]:
    return {
        "calls": step.calls,
        "answered": step.answered,
        "flowing": step.flowing,
        "setup": stats(step.setup_ms),
        "worst_packets_per_s": min(step.rates, default=0.0),
        "cpu_percent": step.cpu_percent,
        "cpu_percent_per_call": step.per_call(),
    }


def record_figures(
    results_file: bench_results.Results, spool: dict[str, Any], bare: dict[str, Any]
) -> None:
    """Each setup time's p50 beside the bare engines', CPU per flowing call at each step beside
    the bare Janus + Kamailio's, and the most calls whose audio flowed."""
    setups = [
        ("call out: invite -> Connected", "outbound", "connected", "Janus: room -> 200 OK"),
        ("call out: invite -> first audio", "outbound", "heard", "Janus: room -> first audio"),
        ("call in, IVR: INVITE -> 200 OK", "inbound", "answered", "Kamailio + Janus line"),
        ("call in, IVR: INVITE -> first audio", "inbound", "heard", "menu played on accept"),
    ]
    for name, part, key, bare_name in setups:
        values = spool[part][key]
        results_file.add(
            f"{name} (p50)",
            percentile(values, 50),
            "ms",
            better="lower",
            ceiling_name=f"bare {bare_name} (p50)",
            ceiling=percentile(bare[part][key], 50),
            p50_ms=percentile(values, 50),
            p99_ms=percentile(values, 99),
        )
    bare_by_calls = {step.calls: step for step in bare["concurrent"]}
    for step in spool["concurrent"]:
        bare_step = bare_by_calls.get(step.calls)
        results_file.add(
            f"CPU per flowing call in, {step.calls} at once (every process of serve)",
            step.per_call(),
            "% of a core",
            better="lower",
            ceiling_name=f"bare Janus + Kamailio per call, {step.calls} at once"
            if bare_step
            else "",
            ceiling=bare_step.per_call() if bare_step else None,
        )
    held = [step.calls for step in spool["concurrent"] if step.flowing >= step.calls]
    tried = max((step.calls for step in spool["concurrent"]), default=0)
    results_file.add(
        f"calls in held with audio flowing (steps up to {tried})",
        max(held, default=0),
        "calls",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="calls one at a time, per figure")
    parser.add_argument("--steps", default="5,10,20,40", help="concurrent calls to try")
    parser.add_argument("--seconds", type=float, default=6, help="each CPU window")
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    global SETTLE, RAMP_SLACK
    if args.smoke:
        args.calls, args.steps, args.seconds, SETTLE, RAMP_SLACK = 1, "1", 1, 0.5, 1.0
    results_file = bench_results.Results("pstn", smoke=args.smoke, path=args.json)
    steps = [int(s) for s in args.steps.split(",")]
    for tool in ("janus", "sipp", "espeak-ng"):
        if not shutil.which(tool):
            print(f"setup failed: {tool} is not installed", file=sys.stderr)
            return 1
    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-pstn-"))
    offer_loopback()
    for name in ("aioice", "aiortc", "azure", "apps"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("apps.automation.sip_line").setLevel(logging.WARNING)  # the bare line's
    began = time.monotonic()
    print(
        f"Spool phone calls: {args.calls} calls per setup figure, steps {steps}, windows of "
        f"{args.seconds:g} s, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        conftest = tokens.load_conftest(scratch)
        from apps.core import kamailio

        if kamailio.kamailio_binary() is None:
            raise SetupError("kamailio is not installed")
        spool = run_spool(args, conftest, scratch, steps)
        bare = run_bare(args, scratch, [s.calls for s in spool["concurrent"]])
    except (SetupError, tokens.SetupError, RuntimeError, OSError, TimeoutError) as error:
        print(f"setup failed: {error!r}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = report(spool, bare)
    record_figures(results_file, spool, bare)
    results_file.save()
    print(f"total run time {time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.2f}")
    print(json.dumps(finite(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

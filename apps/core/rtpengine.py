"""The rtpengine that `manage.py serve` starts beside its SIP edge (Kamailio) when rtpengine is
installed (`apt-get install rtpengine-daemon`), in userspace (no kernel module). It relays the
audio of calls that come in from trunks, so that Spool hears RFC 2833 keys, which Janus does
not report: Kamailio asks it to accept `telephone-event` from the trunk and consume it
(docker/kamailio/kamailio.cfg, `codec-consume-telephone-event`), and it reports each key as
JSON over UDP to the media process (`--dtmf-log-dest`: apps/automation/answering.py):

    {"callid": "<SIP Call-ID>", "source_tag": "<From tag>", "event": 5, "duration": 120, ...}

Janus still hears the key, as an in-band tone rtpengine writes into the audio it passes on."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path

# RFC 4733 event codes: 0-9, then *, #, A-D.
EVENT_KEYS = "0123456789*#ABCD"


def rtpengine_binary() -> str | None:
    return shutil.which("rtpengine") or shutil.which("rtpengine", path="/usr/sbin:/sbin")


def command(
    folder: Path,
    address: str,
    ng_port: int,
    dtmf_log: str,
    ports: tuple[int, int] = (40000, 44999),
) -> list[str]:
    """rtpengine in the foreground, relaying on `address` from the UDP `ports` (first, last),
    taking Kamailio's commands on 127.0.0.1:`ng_port` and reporting keys to `dtmf_log`
    (host:port)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    binary = rtpengine_binary() or "rtpengine"
    return [
        binary,
        # Not /etc/rtpengine/rtpengine.conf: its fixed CLI and HTTP ports (2224, 2225) would
        # collide with any other rtpengine here, and its interface is not ours.
        "--config-file=none",
        "--table=-1",  # userspace: no kernel module
        "--foreground",
        "--log-stderr",
        "--log-level=4",
        f"--interface={address}",
        f"--listen-ng=127.0.0.1:{ng_port}",
        f"--dtmf-log-dest={dtmf_log}",
        f"--pidfile={folder / 'rtpengine.pid'}",
        f"--port-min={ports[0]}",
        f"--port-max={ports[1]}",
    ]


def wait_answering(ng_port: int, timeout: float = 5.0, *, host: str = "127.0.0.1") -> bool:
    """Wait until the rtpengine on `host`:`ng_port` answers an ng `ping`; False if it did not
    within `timeout` s. Kamailio is started after it, or its first calls find no relay."""
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            sock.sendto(b"spool d7:command4:pinge", (host, ng_port))
            try:
                if b"pong" in sock.recv(256):
                    return True
            except OSError:  # a timeout, or ICMP's refusal while it is not listening yet
                time.sleep(0.05)
    return False


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# SRTP suites a trunk may not pick: no encryption (NULL) and the rarely supported F8 mode.
WEAK_SUITES = (
    "NULL_HMAC_SHA1_80",
    "NULL_HMAC_SHA1_32",
    "F8_128_HMAC_SHA1_80",
    "F8_128_HMAC_SHA1_32",
)


def trunk_offer_flags(codecs: Sequence[str], srtp: bool) -> str:
    """rtpengine's offer flags for a call out through a trunk (Kamailio passes them on from
    X-Spool-Media): the trunk's codecs (pcmu, pcma) in its order, transcoded from Janus's G.711
    where they differ; telephone-event, so that its keys come as RFC 2833; with `srtp`, the
    audio encrypted (RTP/SAVP, keys by SDES), the weak suites left out."""
    flags = ["codec-mask-all"]
    flags += [f"codec-transcode-{codec.upper()}" for codec in codecs or ("pcmu", "pcma")]
    flags.append("codec-transcode-telephone-event")
    if srtp:
        flags.append("RTP/SAVP")
        flags += [f"SDES-no-{suite}" for suite in WEAK_SUITES]
    return " ".join(flags)


def key_of(event: dict[str, object]) -> str:
    """The key an rtpengine DTMF report names ("" for anything else)."""
    code = event.get("event")
    if event.get("type") != "DTMF" or not isinstance(code, int) or not 0 <= code < 16:
        return ""
    return EVENT_KEYS[code]

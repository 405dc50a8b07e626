"""A carrier that speaks SIP over TLS, for tests: Kamailio with tests/pstn/tls_carrier.cfg in
front of sipp (which has no TLS), and the certificates both sides need.

    with run_tls_carrier(far_end="127.0.0.1:5070", spool_edge="127.0.0.1:5061",
                         cert=cert, key=key) as carrier:
        carrier.tls_port  # Spool's edge calls out to it over TLS
        carrier.udp_address  # sipp calls in through it
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apps.core import kamailio, rtpengine
from apps.core.tls import ensure_self_signed
from tests.pstn.edge import _stop, free_udp_port, options

CONFIG = Path(__file__).parent / "tls_carrier.cfg"


@dataclass
class Carrier:
    udp_address: str  # host:port
    tls_port: int
    pid: int


def require_tls_module() -> None:
    import os

    import pytest

    if not kamailio.tls_module_installed():
        message = "Kamailio's TLS module not installed: apt-get install kamailio-tls-modules"
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost) in `folder`: (cert, key)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    ensure_self_signed(cert, key, "127.0.0.1")
    return cert, key


def free_tcp_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def run_tls_carrier(
    far_end: str, spool_edge: str, cert: Path, key: Path, *, srtp: bool = False
) -> Iterator[Carrier]:
    """Start the carrier (showing `cert`; it checks nobody's; its audio with Spool SRTP with
    `srtp`, through an rtpengine of its own) and wait until it answers OPTIONS; stop them (by
    PID) on exit."""
    folder = Path(tempfile.mkdtemp(prefix="spool-carrier-"))
    process: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    try:
        defines = ""
        if srtp:
            ng_port = rtpengine.free_udp_port()
            # Ports of its own: an rtpengine that binds Spool's edge's ports shares them.
            argv = rtpengine.command(
                folder / "rtpengine", "127.0.0.1", ng_port, "127.0.0.1:9", ports=(45000, 45999)
            )
            relay = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert rtpengine.wait_answering(ng_port, timeout=10), "the carrier's rtpengine"
            defines = f'#!define RTPENGINE "udp:127.0.0.1:{ng_port}"\n'
        shutil.copyfile(CONFIG, folder / "kamailio.cfg")
        (folder / "tls.cfg").write_text(
            "[server:default]\nmethod = TLSv1.2+\n"
            f"certificate = {cert}\nprivate_key = {key}\n"
            "[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\n"
        )
        (folder / "local.cfg").write_text(
            f'#!define FAR_END "{far_end}"\n#!define SPOOL_EDGE "{spool_edge}"\n'
            f'#!define TLS_CONFIG "{folder / "tls.cfg"}"\n' + defines
        )
        for _ in range(5):  # a port free a moment ago may be taken when Kamailio binds it
            udp_port, tls_port = free_udp_port(), free_tcp_port()
            argv = [kamailio.kamailio_binary() or "kamailio", "-f", str(folder / "kamailio.cfg")]
            argv += ["-Y", str(folder), "-DD", "-E", "-L", kamailio.MODULES]
            argv += ["-l", f"udp:127.0.0.1:{udp_port}", "-l", f"tls:127.0.0.1:{tls_port}"]
            process = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=open(folder / "kamailio.log", "wb"),
                start_new_session=True,  # its workers in its group: _stop ends them all
            )
            deadline = time.monotonic() + 10
            while process.poll() is None and time.monotonic() < deadline:
                if options(f"127.0.0.1:{udp_port}") == 200:
                    yield Carrier(f"127.0.0.1:{udp_port}", tls_port, process.pid)
                    return
                time.sleep(0.1)
            _stop(process)
        log = (folder / "kamailio.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the TLS carrier did not start:\n{log}")
    finally:
        for started in (process, relay):
            if started is not None:
                _stop(started)
        shutil.rmtree(folder, ignore_errors=True)

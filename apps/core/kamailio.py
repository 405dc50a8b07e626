"""The Kamailio that `manage.py serve` starts as Spool's SIP edge when none is configured
(docker/kamailio/kamailio.cfg): it listens on SPOOL_BIND at SPOOL_SIP_PORT, UDP and TCP, and
takes the REGISTER of Spool's SIP line only from the address Janus's SIP plugin sends from."""

from __future__ import annotations

import shutil
from pathlib import Path

from django.conf import settings

CONFIG = Path(settings.BASE_DIR) / "docker" / "kamailio" / "kamailio.cfg"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")


def command(
    folder: Path, address: str, port: int, line_address: str, loopback_secret: str = ""
) -> list[str]:
    """Kamailio in the foreground (-DD), logging to stderr (-E), its control socket and
    runtime files in `folder`; calls carrying `loopback_secret` are the loopback carrier's."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    binary = kamailio_binary() or "kamailio"
    argv = [binary, "-f", str(CONFIG), "-Y", str(folder), "-DD", "-E"]
    argv += ["-l", f"udp:{address}:{port}", "-l", f"tcp:{address}:{port}"]
    argv += ["-A", f'LINE_ADDRESS="{line_address}"']
    if loopback_secret:
        argv += ["-A", f'LOOPBACK_SECRET="{loopback_secret}"']
    if Path(MODULES).is_dir():
        argv += ["-L", MODULES]
    return argv

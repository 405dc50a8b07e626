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
    folder: Path,
    address: str,
    port: int,
    line_address: str,
    loopback_secret: str = "",
    rtpengine: str = "",
) -> list[str]:
    """Kamailio in the foreground (-DD), logging to stderr (-E), with its configuration, control
    socket and runtime files in `folder`; calls carrying `loopback_secret` are the loopback
    carrier's; calls from trunks have their audio relayed by the rtpengine whose control
    socket is `rtpengine` (udp:127.0.0.1:PORT), when given. The defines go in local.cfg beside
    the configuration (readable by this user only), not on the command line where any local
    user could read the secret."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(CONFIG, folder / "kamailio.cfg")
    local = folder / "local.cfg"
    local.touch(mode=0o600)
    local.write_text(
        f'#!define LINE_ADDRESS "{line_address}"\n'
        + (f'#!define LOOPBACK_SECRET "{loopback_secret}"\n' if loopback_secret else "")
        + (f'#!define RTPENGINE "{rtpengine}"\n' if rtpengine else "")
    )
    binary = kamailio_binary() or "kamailio"
    argv = [binary, "-f", str(folder / "kamailio.cfg"), "-Y", str(folder), "-DD", "-E"]
    argv += ["-l", f"udp:{address}:{port}", "-l", f"tcp:{address}:{port}"]
    if Path(MODULES).is_dir():
        argv += ["-L", MODULES]
    return argv

"""The Kamailio that `manage.py serve` starts as Spool's SIP edge when none is configured
(docker/kamailio/kamailio.cfg): it listens on SPOOL_BIND at SPOOL_SIP_PORT, UDP and TCP (and TLS
at SPOOL_SIP_TLS_PORT), takes the REGISTER of Spool's SIP line only from the address Janus's SIP
plugin sends from, and relays outwards only the calls Spool places (marked with the secret)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

CONFIG = Path(settings.BASE_DIR) / "docker" / "kamailio" / "kamailio.cfg"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"


@dataclass(frozen=True)
class SipTls:
    """SIP over TLS at the edge: trunks connect on `port` and are shown `cert`; calls out to
    TLS trunks accept only certificates that `ca_file` vouches for."""

    port: int
    cert: Path
    key: Path
    ca_file: Path


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")


def tls_module_installed() -> bool:
    """Whether Kamailio's TLS module is here (Debian's kamailio-tls-modules)."""
    return (Path(MODULES) / "tls.so").is_file()


def command(
    folder: Path,
    address: str,
    port: int,
    line_address: str,
    secret: str,
    *,
    loopback: bool = False,
    rtpengine: str = "",
    tls: SipTls | None = None,
) -> list[str]:
    """Kamailio in the foreground (-DD), logging to stderr (-E), with its configuration, control
    socket and runtime files in `folder`. Calls from `line_address` carrying `secret` are
    Spool's own: through trunks, or the loopback carrier's (with `loopback`); trunks' calls
    have their audio relayed by the rtpengine whose control socket is `rtpengine`
    (udp:127.0.0.1:PORT), when given. The defines go in local.cfg beside the configuration
    (readable by this user only), not on the command line where any local user could read
    the secret."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(CONFIG, folder / "kamailio.cfg")
    defines = {"LINE_ADDRESS": line_address, "EDGE_SECRET": secret}
    if loopback:
        defines["LOOPBACK"] = "1"
    if rtpengine:
        defines["RTPENGINE"] = rtpengine
    if tls is not None:
        defines["TLS_CONFIG"] = str(_write_tls_config(folder, tls))
    local = folder / "local.cfg"
    local.touch(mode=0o600)
    local.write_text("".join(f'#!define {name} "{value}"\n' for name, value in defines.items()))
    binary = kamailio_binary() or "kamailio"
    argv = [binary, "-f", str(folder / "kamailio.cfg"), "-Y", str(folder), "-DD", "-E"]
    argv += ["-l", f"udp:{address}:{port}", "-l", f"tcp:{address}:{port}"]
    if tls is not None:
        argv += ["-l", f"tls:{address}:{tls.port}"]
    if Path(MODULES).is_dir():
        argv += ["-L", MODULES]
    return argv


def _write_tls_config(folder: Path, tls: SipTls) -> Path:
    """Kamailio's tls.cfg: TLS 1.2 or later; as a server, our certificate (trunks are known by
    their addresses, not by certificates); as a client, the trunk's certificate must chain to
    `ca_file`, or the call is not placed."""
    path = folder / "tls.cfg"
    path.write_text(
        "[server:default]\n"
        "method = TLSv1.2+\n"
        f"certificate = {tls.cert}\n"
        f"private_key = {tls.key}\n"
        "verify_certificate = no\n"
        "require_certificate = no\n"
        "\n"
        "[client:default]\n"
        "method = TLSv1.2+\n"
        "verify_certificate = yes\n"
        "require_certificate = yes\n"
        f"ca_list = {tls.ca_file}\n"
    )
    return path

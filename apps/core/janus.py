"""The Janus that `manage.py serve` starts for the media plane when none is configured: the
project's docker/janus configuration copied under $SPOOL_DATA_DIR/janus, its WebSocket API
moved to a free loopback port (Janus takes no flag for it)."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

from django.conf import settings

CONFIG = Path(settings.BASE_DIR) / "docker" / "janus"


def janus_binary() -> str | None:
    return shutil.which("janus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(folder: Path, port: int, *, api_secret: str = "") -> str:
    """Write Janus's configuration to `folder` with its API on `port`; returns the API URL."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copytree(CONFIG, folder, dirs_exist_ok=True)
    transport = folder / "janus.transport.websockets.jcfg"
    transport.write_text(
        re.sub(r"ws_port = \d+", f"ws_port = {port}", transport.read_text(), count=1)
    )
    if settings.BIND_ADDRESS not in ("0.0.0.0", "::"):
        # Nothing listens beyond SPOOL_BIND: the SIP plugin's stacks and RTP bind there too.
        sip = folder / "janus.plugin.sip.jcfg"
        sip.write_text(
            sip.read_text().replace(
                '#local_ip = "10.0.0.5"', f'local_ip = "{settings.BIND_ADDRESS}"', 1
            )
        )
    if api_secret:
        general = folder / "janus.jcfg"
        general.write_text(
            general.read_text().replace(
                "general: {", f'general: {{\n\tapi_secret = "{api_secret}"', 1
            )
        )
    return f"ws://127.0.0.1:{port}"


def command(folder: Path, log: Path) -> list[str]:
    binary = janus_binary() or "janus"
    # -N: its log goes to the file only, not into serve's output.
    return [binary, "-F", str(folder), "-L", str(log), "-N", "-o"]

"""HAProxy's admin socket (docker/haproxy/haproxy.cfg puts it in $SPOOL_LB_RUN_DIR): commands,
and the web servers' columns of `show stat`. For the tests and bench/scale.py."""

from __future__ import annotations

import socket
from pathlib import Path


def admin(socket_path: Path, command: str) -> str:
    """One command's answer ("" when it has nothing to say)."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(socket_path))
        connection.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: connection.recv(65536), b"")).decode()


def web_servers(socket_path: Path, column: str) -> dict[str, str]:
    """web1, web2... of the spool_web backend -> their `column` of `show stat` (status: UP,
    DOWN, DRAIN, MAINT...; stot: requests served)."""
    lines = admin(socket_path, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {
        row["svname"]: row[column]
        for row in rows
        if row.get("pxname") == "spool_web" and row["svname"].startswith("web")
    }

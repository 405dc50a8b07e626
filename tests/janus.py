"""A Janus for tests and benchmarks: docker/janus/ copied to a temporary folder, its WebSocket
transport moved to a free port on 127.0.0.1.

    with run_janus() as janus:      # janus.url == "ws://127.0.0.1:PORT", janus.pid
        ...

`BarsTrack` is a synthetic video source for the SFU tests and bench/calls.py.

Tests call `require_janus()` first: it skips when Debian's `janus` is not installed, and fails
instead when SPOOL_REQUIRE_TOOLS=1 (CI installs it, so a skip there would hide a failure).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiortc import VideoStreamTrack
from av import VideoFrame

JANUS = shutil.which("janus") or "/usr/bin/janus"
CONFIG = Path(__file__).resolve().parent.parent / "docker" / "janus"
GRAIN = bytes(112 + i % 32 for i in range(256))  # random bytes -> grey +-16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JanusProcess:
    url: str
    pid: int
    log: Path


def require_janus() -> None:
    import pytest

    if not os.path.exists(JANUS):
        message = "Janus not installed: apt-get install janus"
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _answers(url: str) -> bool:
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    try:
        with connect(url, subprotocols=[Subprotocol("janus-protocol")], open_timeout=2) as ws:
            ws.send(json.dumps({"janus": "info", "transaction": "ready"}))
            return json.loads(ws.recv(timeout=2)).get("janus") == "server_info"
    except (OSError, TimeoutError, WebSocketException):
        return False


@contextmanager
def run_janus(*, debug_level: int = 4, api_secret: str = "") -> Iterator[JanusProcess]:
    """Start Janus (with `api_secret`, if given) and wait until its API answers; stop it (by
    PID) on exit."""
    if not os.path.exists(JANUS):
        raise RuntimeError("Janus not installed: apt-get install janus")
    folder = Path(tempfile.mkdtemp(prefix="spool-janus-"))
    try:
        shutil.copytree(CONFIG, folder, dirs_exist_ok=True)
        port = free_port()
        transport = folder / "janus.transport.websockets.jcfg"
        transport.write_text(
            re.sub(r"ws_port = \d+", f"ws_port = {port}", transport.read_text(), count=1)
        )
        sip = folder / "janus.plugin.sip.jcfg"  # phone legs on loopback, as tests use
        sip.write_text(sip.read_text().replace('#local_ip = "10.0.0.5"', 'local_ip = "127.0.0.1"'))
        if api_secret:
            general = folder / "janus.jcfg"
            general.write_text(
                general.read_text().replace(
                    "general: {", f'general: {{\n\tapi_secret = "{api_secret}"', 1
                )
            )
        log = folder / "janus.log"
        process = subprocess.Popen(
            [JANUS, "-F", str(folder), "-L", str(log), "-d", str(debug_level), "-o"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"ws://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text()[-3000:] if log.exists() else ""
                    raise RuntimeError(f"Janus did not answer on {url}:\n{tail}")
                time.sleep(0.1)
            yield JanusProcess(url, process.pid, log)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class BarsTrack(VideoStreamTrack):
    """30 fps frames of a white bar moving across grey, so VP8 has motion to code; with
    `noise`, random grain around grey (+-16) instead, which aiortc's VP8 encoder codes at about
    its 500 kbit/s target, like a camera (full-range noise would take ~4 Mbit/s). The frames
    are made up front (40, then repeated): the source itself costs little CPU."""

    def __init__(self, width: int = 320, height: int = 240, *, noise: bool = False) -> None:
        super().__init__()
        self.width, self.height = width, height
        self.chroma = bytes([128]) * (width // 2 * height // 2)
        self.lumas = []
        bar = width // 10
        for step in range(40):
            if noise:
                self.lumas.append(os.urandom(width * height).translate(GRAIN))
                continue
            row = bytearray([100]) * width
            start = step * (width - bar) // 39
            row[start : start + bar] = bytes([235]) * bar
            self.lumas.append(bytes(row) * height)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(self.lumas[(pts // 3000) % len(self.lumas)])
        frame.planes[1].update(self.chroma)
        frame.planes[2].update(self.chroma)
        frame.pts, frame.time_base = pts, time_base
        return frame

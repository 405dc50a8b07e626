"""Hosts for tests: Linux network namespaces on one bridge, each with an address of its own,
all created by the test and removed after it (root only; `ip netns`).

    with Network() as network:
        data = network.host("data", "10.77.0.2")
        subprocess.Popen(data.command(["redis-server", ...]))   # a process on that host
        with data.threads() as client:                           # Python code on that host
            client.submit(requests.get, "http://10.77.0.3/").result()

The bridge lives in a namespace of its own too, so nothing of this reaches the machine's
network. A thread moves into a namespace with setns(2), which changes only the calling
thread: sockets it opens stay in that namespace whatever thread uses them later.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

CLONE_NEWNET = 0x40000000
PREFIX = 16  # every host on 10.77.0.0/16 here: the namespaces are private
CUT_TABLE = "spool_cut"  # drop_incoming's nftables table


def require_namespaces() -> None:
    """Skip unless this process may create network namespaces (fail when
    SPOOL_REQUIRE_TOOLS=1: CI runs as root, so a skip there would hide a failure)."""
    import pytest

    problem = ""
    if shutil.which("ip") is None:
        problem = "iproute2's `ip` is not installed"
    elif os.geteuid() != 0:
        problem = "network namespaces need root"
    if problem:
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def enter(namespace: str) -> None:
    """Move the calling thread into `namespace` (setns(2) on /var/run/netns/<name>)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{namespace}") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")


@dataclass
class Host:
    name: str
    namespace: str
    address: str

    def command(self, args: list[str]) -> list[str]:
        """`args` run on this host (`ip netns exec` execs them: the PID is the program's)."""
        return ["ip", "netns", "exec", self.namespace, *args]

    @contextlib.contextmanager
    def threads(self, workers: int = 4) -> Iterator[ThreadPoolExecutor]:
        """Worker threads that live on this host."""
        pool = ThreadPoolExecutor(
            workers, thread_name_prefix=self.name, initializer=enter, initargs=(self.namespace,)
        )
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def pids(self) -> list[int]:
        found = subprocess.run(
            ["ip", "netns", "pids", self.namespace], capture_output=True, text=True, timeout=20
        )
        return [int(pid) for pid in found.stdout.split()]

    def drop_incoming(self, port: int) -> None:
        """Packets to `port` on this host vanish from now on, as when its network fails:
        nothing is refused, so its peers find out only by their own timeouts (nftables, in
        this host's namespace)."""
        for rule in (
            ["add", "table", "inet", CUT_TABLE],
            ["add", "chain", "inet", CUT_TABLE, "input"]
            + ["{ type filter hook input priority 0 ; }"],
            ["add", "rule", "inet", CUT_TABLE, "input", "tcp", "dport", str(port), "drop"],
        ):
            subprocess.run(
                self.command(["nft", *rule]), check=True, capture_output=True, timeout=20
            )

    def accept_all(self) -> None:
        """Undo drop_incoming."""
        subprocess.run(
            self.command(["nft", "delete", "table", "inet", CUT_TABLE]),
            check=True,
            capture_output=True,
            timeout=20,
        )

    def kill(self) -> int:
        """The host dies: SIGKILL to every process in it. Returns how many there were."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)


@dataclass
class Network:
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    hosts: list[Host] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"spool-{self.tag}-sw"

    def __enter__(self) -> Network:
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def host(self, name: str, address: str) -> Host:
        """A new host on the bridge, with `address` on its eth0 and loopback up."""
        host = Host(name, f"spool-{self.tag}-{name}", address)
        _ip("netns", "add", host.namespace)
        self.hosts.append(host)
        port = f"p-{name}"[:15]
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0")
        _ip("-n", self.switch, "link", "set", "eth0", "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.namespace, "addr", "add", f"{address}/{PREFIX}", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        return host

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for host in self.hosts:  # what a test left running dies with its host
            host.kill()
        for namespace in [host.namespace for host in self.hosts] + [self.switch]:
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, timeout=20)

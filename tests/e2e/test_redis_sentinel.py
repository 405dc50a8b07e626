"""Spool on Redis through Sentinel (a primary, a replica and three Sentinels, on loopback): the
primary is killed, the Sentinels promote the replica, and the platform carries on by itself
(tokens, SMS through the worker, chat to open sockets) with every accepted SMS delivered
exactly once."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import websockets
from azure.communication.chat import ChatClient, CommunicationTokenCredential
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.sms import SmsClient

from tests.conftest import LiveSpool, free_port, start_spool, stop_spool, wait_for

pytestmark = pytest.mark.e2e

MASTER = "spool"


@dataclass
class Cluster:
    primary: subprocess.Popen[bytes]
    primary_port: int
    replica_port: int
    sentinels: list[int]
    processes: list[subprocess.Popen[bytes]]

    def master_port(self) -> int | None:
        for port in self.sentinels:
            try:
                address = redis.Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(
                    MASTER
                )
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None


def redis_server(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    primary_port, replica_port = free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    primary = redis_server("--port", str(primary_port), *common, cwd=tmp_path / "primary")
    replica = redis_server(
        "--port",
        str(replica_port),
        "--replicaof",
        "127.0.0.1",
        str(primary_port),
        *common,
        cwd=tmp_path / "replica",
    )
    processes = [primary, replica]
    sentinels = []
    for n in range(3):
        port = free_port()
        config = tmp_path / f"sentinel-{n}.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
        )
        processes.append(redis_server(str(config), "--sentinel", cwd=tmp_path))
        sentinels.append(port)
    cluster = Cluster(primary, primary_port, replica_port, sentinels, processes)
    try:
        wait_for(
            lambda: (
                redis.Redis(port=replica_port).info("replication")["master_link_status"] == "up"
            ),
            20,
            errors=(redis.RedisError,),  # the replica is still starting
        )
        wait_for(lambda: cluster.master_port() == primary_port, 20)
        yield cluster
    finally:
        for process in processes:  # by PID: only what this fixture started
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


def sms_statuses(live: LiveSpool) -> dict[str, str]:
    script = (
        "import json; from apps.sms.models import SmsMessage; "
        "print(json.dumps(dict(SmsMessage.objects.filter(direction='outbound')"
        ".values_list('id', 'status'))))"
    )
    return dict(json.loads(live.manage("shell", "-c", script).stdout.strip().splitlines()[-1]))


def carrier_submissions(live: LiveSpool) -> dict[str, int]:
    script = (
        "import json; from apps.sms.models import SmsMessage; "
        "print(json.dumps(dict(SmsMessage.objects.filter(direction='outbound')"
        ".values_list('id', 'submissions'))))"
    )
    return dict(json.loads(live.manage("shell", "-c", script).stdout.strip().splitlines()[-1]))


@pytest.mark.timeout(300)
def test_the_platform_rides_out_a_redis_failover(cluster: Cluster) -> None:
    sentinels = ",".join(f"127.0.0.1:{port}" for port in cluster.sentinels)
    live, cleanups = start_spool({"REDIS_URL": f"redis://{MASTER}/0", "REDIS_SENTINELS": sentinels})
    try:
        connection = live.create_resource()
        sender = live.give_number(connection)
        identities = CommunicationIdentityClient.from_connection_string(
            connection, connection_verify=live.cert
        )
        sms = SmsClient.from_connection_string(connection, connection_verify=live.cert)
        alice, alice_token = identities.create_user_and_token(["chat"])
        bob, bob_token = identities.create_user_and_token(["chat"])
        endpoint = connection.split("endpoint=", 1)[1].split(";", 1)[0]
        chat = ChatClient(
            endpoint, CommunicationTokenCredential(alice_token.token), connection_verify=live.cert
        )
        thread = chat.create_chat_thread(
            "failover", thread_participants=[_participant(bob.properties["id"])]
        ).chat_thread
        assert thread is not None
        accepted: list[str] = []

        def send(count: int) -> None:
            for _ in range(count):
                recipient = f"+4477009{len(accepted):05d}"
                [result] = sms.send(from_=sender, to=[recipient], message="hi")
                assert result.successful
                accepted.append(result.message_id)

        # given traffic through the primary
        send(3)
        wait_for(lambda: all(s == "delivered" for s in sms_statuses(live).values()), 60)

        # when the primary dies
        cluster.primary.kill()
        cluster.primary.wait()
        # then the Sentinels promote the replica
        promoted_in = wait_for(lambda: cluster.master_port() == cluster.replica_port, 30)

        # and the platform takes work again within a stated time: tokens, SMS, chat pushes
        started = time.monotonic()
        wait_for(lambda: _token_works(identities), 30)
        send(3)

        async def pushed() -> bool:
            ws_url = endpoint.replace("https://", "wss://").rstrip("/") + "/ws/"
            socket_ = await _connect_as_clients_do(f"{ws_url}?access_token={bob_token.token}", live)
            async with socket_:
                await asyncio.to_thread(_send_chat, endpoint, alice_token.token, thread.id, live)
                async with asyncio.timeout(15):
                    while True:
                        frame = json.loads(await socket_.recv())
                        if "after failover" in json.dumps(frame):
                            return True

        assert asyncio.run(pushed())
        resumed_in = time.monotonic() - started
        # and the health check, which asks the Sentinels too, says all is well
        wait_for(lambda: _healthy(live), 10)

        # and every SMS accepted, before and after, reaches the carrier exactly once
        wait_for(lambda: len(sms_statuses(live)) == 6, 10)
        wait_for(lambda: all(s == "delivered" for s in sms_statuses(live).values()), 90)
        assert sorted(sms_statuses(live)) == sorted(accepted)
        assert set(carrier_submissions(live).values()) == {1}
        # (through the promoted replica: the web, worker and beat processes are its clients)
        assert redis.Redis(port=cluster.replica_port).info("clients")["connected_clients"] >= 4
        print(
            f"failover: promoted in {promoted_in:.1f} s, traffic resumed {resumed_in:.1f} s later"
        )
    finally:
        stop_spool(live, cleanups)


def _participant(raw_id: str) -> Any:
    from azure.communication.chat import ChatParticipant
    from azure.communication.identity import CommunicationUserIdentifier

    return ChatParticipant(identifier=CommunicationUserIdentifier(raw_id), display_name="Bob")


async def _connect_as_clients_do(url: str, live: LiveSpool) -> Any:
    """Opens the socket and reads its hello, reconnecting (as docs/api.md tells clients to)
    while a web process's channel layer is still finding the promoted master: such a socket
    is closed with 1013, "try again later"."""
    deadline = time.monotonic() + 15
    while True:
        socket_ = await websockets.connect(url, ssl=live.ssl_context())
        try:
            assert json.loads(await socket_.recv())["type"] == "hello"
            return socket_
        except websockets.ConnectionClosedError as closed:
            if closed.rcvd is None or closed.rcvd.code != 1013 or time.monotonic() > deadline:
                raise
            print(f"closed with 1013 ({closed.rcvd.reason}); reconnecting")
        await asyncio.sleep(0.5)


def _token_works(identities: CommunicationIdentityClient) -> bool:
    try:
        identities.create_user_and_token(["chat"])
        return True
    except Exception:
        return False


def _send_chat(endpoint: str, token: str, thread_id: str, live: LiveSpool) -> None:
    from azure.communication.chat import ChatThreadClient

    ChatThreadClient(
        endpoint, CommunicationTokenCredential(token), thread_id, connection_verify=live.cert
    ).send_message("after failover")


def _healthy(live: LiveSpool) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{live.http_url}/healthz", timeout=3) as answer:
            return json.loads(answer.read())["redis"] == "ok"
    except urllib.error.URLError:
        return False

"""PostgreSQL through Django's psycopg pool (SPOOL_DB_POOL_SIZE): a live `serve` answers the
SDKs with each process holding at most that many connections."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psutil
import pytest
from azure.communication.identity import CommunicationIdentityClient

from tests.conftest import start_spool, stop_spool

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL"), reason="the pool is PostgreSQL's (DATABASE_URL)"
    ),
]

POOL_SIZE = 2


def database_connections(process: psutil.Process) -> int:
    """The process's open TCP connections to PostgreSQL."""
    port = urlsplit(os.environ["DATABASE_URL"]).port or 5432
    return sum(
        1
        for link in process.net_connections(kind="tcp")
        if link.raddr and link.raddr.port == port and link.status == psutil.CONN_ESTABLISHED
    )


@pytest.mark.timeout(180)
def test_a_pooled_platform_serves_with_bounded_connections() -> None:
    # given serve with two web processes of four threads each, each process on a pool of 2
    live, cleanups = start_spool(
        {
            "SPOOL_DB_POOL_SIZE": str(POOL_SIZE),
            "SPOOL_WEB_PROCESSES": "2",
            "SPOOL_WEB_THREADS": "4",
        }
    )
    try:
        connection = live.create_resource()
        identities = CommunicationIdentityClient.from_connection_string(
            connection, connection_verify=live.cert
        )

        # when 16 clients ask for tokens at once, 80 in all
        with ThreadPoolExecutor(16) as clients:
            users = list(
                clients.map(lambda _: identities.create_user_and_token(["chat"]), range(80))
            )

        # then every one is answered, and each web process held at most its pool (its four
        # threads would each keep a connection of their own without it)
        assert len({user.properties["id"] for user, _ in users}) == 80
        assert live.process is not None
        web = [
            child
            for child in psutil.Process(live.process.pid).children()
            if "runweb" in " ".join(child.cmdline())
        ]
        assert len(web) == 2
        held = [database_connections(process) for process in web]
        assert all(1 <= count <= POOL_SIZE for count in held), held
    finally:
        stop_spool(live, cleanups)

"""Round trips of token requests on PostgreSQL: the event loop reads nothing, and a batch's
identities are read in one round trip whatever their number (read on the loop, a request at a
time, each held the loop ~0.3 ms under load: bench/tokens.py)."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.accounts import services, token_route
from apps.accounts.models import Resource
from tests.accounts.test_token_route import token_request
from tests.round_trips import counted_round_trips

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("round trips to a database server: SQLite is in the process")


def test_a_batch_of_token_requests_reads_its_identities_in_one_round_trip(
    resource: Resource,
) -> None:
    identities = [services.create_identity(resource)[0] for _ in range(6)]
    waits: dict[int, int] = {}
    read_on_the_loop: dict[int, int] = {}

    def read(size: int) -> list[token_route._TokenRequest]:
        with counted_round_trips() as server:
            items = [
                token_route.pending(*token_request(resource, identity.raw_id))
                for identity in identities[:size]
            ]
            read_on_the_loop[size] = server.round_trips
            token_route._read(items)  # (its statement prepared on the connection)
            server.round_trips = 0
            token_route._read(items)
            waits[size] = server.round_trips
        return items

    read(2)
    items = read(6)

    assert read_on_the_loop == {2: 0, 6: 0}
    assert waits == {2: 1, 6: 1}
    assert [item.answer()[0] for item in items] == [200] * 6

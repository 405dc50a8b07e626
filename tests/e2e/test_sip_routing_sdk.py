"""The official azure-communication-phonenumbers SipRoutingClient against a live
`manage.py serve`: trunks merged by FQDN, routes replaced whole, and ACS's refusals."""

from __future__ import annotations

import pytest
from azure.communication.phonenumbers.siprouting import SipRoutingClient, SipTrunk, SipTrunkRoute
from azure.core.exceptions import HttpResponseError

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e

US = r"^\+1(\d{10})$"


@pytest.fixture(scope="module")
def client(live_spool: LiveSpool) -> SipRoutingClient:
    return SipRoutingClient.from_connection_string(
        live_spool.create_resource(), connection_verify=live_spool.cert
    )


def trunks_of(client: SipRoutingClient) -> dict[str, int]:
    return {t.fqdn: t.sip_signaling_port for t in client.list_trunks()}


def test_trunks_and_routes_with_the_sdk(client: SipRoutingClient) -> None:
    # given nothing is configured
    assert trunks_of(client) == {} and list(client.list_routes()) == []

    # when trunks are set, one is added and one read back
    client.set_trunks([SipTrunk(fqdn="sbc.example.com", sip_signaling_port=5061)])
    client.set_trunk(SipTrunk(fqdn="sbc2.example.com", sip_signaling_port=5060))
    assert client.get_trunk("sbc.example.com").sip_signaling_port == 5061
    assert trunks_of(client) == {"sbc.example.com": 5061, "sbc2.example.com": 5060}
    with pytest.raises(KeyError):
        client.get_trunk("missing.example.com")

    # when routes are set, then they read back as set, in order
    client.set_routes(
        [
            SipTrunkRoute(
                name="us",
                description="US",
                number_pattern=US,
                trunks=["sbc.example.com", "sbc2.example.com"],
            ),
            SipTrunkRoute(name="uk", number_pattern=r"^\+44\d+$", trunks=["sbc2.example.com"]),
        ]
    )
    routes = list(client.list_routes())
    assert [(r.name, r.number_pattern, r.trunks) for r in routes] == [
        ("us", US, ["sbc.example.com", "sbc2.example.com"]),
        ("uk", r"^\+44\d+$", ["sbc2.example.com"]),
    ]
    assert routes[0].description == "US"

    # when a trunk a route uses is deleted, then ACS's refusal, and nothing changed
    with pytest.raises(HttpResponseError) as refused:
        client.delete_trunk("sbc2.example.com")
    assert refused.value.status_code == 422
    assert refused.value.error.code == "UnprocessableConfiguration"
    assert "sbc2.example.com" in trunks_of(client)

    # when a route names a trunk that does not exist, then refused, and nothing changed
    with pytest.raises(HttpResponseError) as missing:
        client.set_routes([SipTrunkRoute(name="x", number_pattern=US, trunks=["nope.example.com"])])
    assert missing.value.status_code == 422
    assert len(list(client.list_routes())) == 2

    # when the routes no longer use it, then it can be deleted
    client.set_routes([SipTrunkRoute(name="us", number_pattern=US, trunks=["sbc.example.com"])])
    client.delete_trunk("sbc2.example.com")
    assert trunks_of(client) == {"sbc.example.com": 5061}

    # and set_trunks replaces the list (deleting what is not in it, by null)
    client.set_trunks(
        [
            SipTrunk(fqdn="sbc.example.com", sip_signaling_port=5062),
            SipTrunk(fqdn="sbc3.example.com", sip_signaling_port=5063),
        ]
    )
    assert trunks_of(client) == {"sbc.example.com": 5062, "sbc3.example.com": 5063}


def test_bad_trunks_are_refused(client: SipRoutingClient) -> None:
    for trunk in (
        SipTrunk(fqdn="192.0.2.1", sip_signaling_port=5061),
        SipTrunk(fqdn="good.example.com", sip_signaling_port=0),
    ):
        with pytest.raises(HttpResponseError) as refused:
            client.set_trunk(trunk)
        assert refused.value.status_code == 422
    assert "good.example.com" not in trunks_of(client)

"""apps.pstn.services: the SIP routing configuration's rules, the operator's trunk settings,
and the lookups the SIP engines make (route_call, trunk_for_source)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.pstn import services
from apps.pstn.exceptions import InvalidTrunkSettings, SipConfigurationError
from apps.pstn.models import SipRoute, SipTrunk

pytestmark = pytest.mark.django_db

US = r"^\+1\d{10}$"


def rows() -> tuple[list[Any], list[Any]]:
    return (
        list(SipTrunk.objects.order_by("pk").values()),
        list(SipRoute.objects.order_by("pk").values()),
    )


def refused(resource: Any, body: Any) -> SipConfigurationError:
    """The patch is refused and changes nothing."""
    before = rows()
    with pytest.raises(SipConfigurationError) as caught:
        services.patch_configuration(resource, body)
    assert rows() == before
    return caught.value


@pytest.fixture
def configured(resource: Any) -> Any:
    services.patch_configuration(
        resource,
        {
            "trunks": {
                "sbc1.example.com": {"sipSignalingPort": 5061},
                "sbc2.example.com": {"sipSignalingPort": 5062},
            },
            "routes": [
                {"name": "us", "numberPattern": US, "trunks": ["sbc1.example.com"]},
                {"name": "any", "numberPattern": r"^\+\d+$", "trunks": ["sbc2.example.com"]},
            ],
        },
    )
    return resource


# --- Merging --------------------------------------------------------------------------------
def test_an_empty_resource_has_an_empty_configuration(resource) -> None:
    assert services.configuration(resource) == {"trunks": {}, "routes": []}


def test_trunks_merge_by_fqdn_and_null_deletes_one(configured) -> None:
    # when one trunk changes port, one is added and one is deleted (no route uses it now)
    services.patch_configuration(configured, {"routes": [{"name": "us", "numberPattern": US}]})
    result = services.patch_configuration(
        configured,
        {
            "trunks": {
                "sbc1.example.com": {"sipSignalingPort": 5070},
                "sbc3.example.com": {"sipSignalingPort": 5063},
                "sbc2.example.com": None,
            }
        },
    )

    # then
    assert result["trunks"] == {
        "sbc1.example.com": {"sipSignalingPort": 5070},
        "sbc3.example.com": {"sipSignalingPort": 5063},
    }
    assert result == services.configuration(configured)


def test_routes_are_replaced_whole_and_keep_their_order(configured) -> None:
    # when
    result = services.patch_configuration(
        configured,
        {
            "routes": [
                {"name": "b", "numberPattern": "^\\+44", "trunks": ["sbc2.example.com"]},
                {
                    "name": "a",
                    "description": "US",
                    "numberPattern": US,
                    "trunks": ["sbc2.example.com", "sbc1.example.com"],
                },
            ]
        },
    )

    # then the trunks are left alone and the routes are exactly the new ones
    assert set(result["trunks"]) == {"sbc1.example.com", "sbc2.example.com"}
    assert result["routes"] == [
        {"name": "b", "numberPattern": "^\\+44", "trunks": ["sbc2.example.com"]},
        {
            "name": "a",
            "description": "US",
            "numberPattern": US,
            "trunks": ["sbc2.example.com", "sbc1.example.com"],
        },
    ]


def test_a_patch_without_trunks_or_routes_changes_nothing(configured) -> None:
    before = services.configuration(configured)
    assert services.patch_configuration(configured, {}) == before
    assert services.patch_configuration(configured, {"trunks": {}}) == before


def test_an_empty_trunk_object_keeps_an_existing_trunk(configured) -> None:
    result = services.patch_configuration(configured, {"trunks": {"sbc1.example.com": {}}})
    assert result["trunks"]["sbc1.example.com"] == {"sipSignalingPort": 5061}


def test_null_routes_remove_them_all_and_then_trunks_can_go(configured) -> None:
    result = services.patch_configuration(configured, {"routes": None, "trunks": None})
    assert result == {"trunks": {}, "routes": []}


def test_the_api_leaves_the_operators_settings_alone(configured) -> None:
    # given an operator's settings
    trunk = SipTrunk.objects.get(fqdn="sbc1.example.com")
    settings = services.check_trunk_settings(
        {"enabled": True, "address": "192.0.2.10", "allowed_networks": "192.0.2.0/24"}
    )
    services.update_trunk_settings(trunk, settings)

    # when the tenant changes the port
    services.patch_configuration(
        configured, {"trunks": {"SBC1.example.com": {"sipSignalingPort": 6000}}}
    )

    # then
    trunk.refresh_from_db()
    assert (trunk.signaling_port, trunk.enabled, trunk.address) == (6000, True, "192.0.2.10")
    assert trunk.allowed_networks == ["192.0.2.0/24"]


def test_a_new_trunk_waits_for_an_operator(resource) -> None:
    services.patch_configuration(
        resource, {"trunks": {"sbc.example.com": {"sipSignalingPort": 5061}}}
    )
    trunk = SipTrunk.objects.get()
    assert not trunk.enabled and trunk.target_host == "sbc.example.com"
    assert trunk.codecs == ["pcmu", "pcma"] and trunk.allowed_networks == []


# --- FQDNs and ports ------------------------------------------------------------------------
def test_fqdns_are_lowercased(resource) -> None:
    result = services.patch_configuration(
        resource, {"trunks": {"SBC.Example.COM": {"sipSignalingPort": 5061}}}
    )
    assert list(result["trunks"]) == ["sbc.example.com"]


@pytest.mark.parametrize(
    "fqdn",
    [
        "-1",
        "localhost",
        "192.0.2.1",
        "10.0.0.1",
        "[2001:db8::1]",
        "2001:db8::1",
        "sbc..example.com",
        "-sbc.example.com",
        "sbc-.example.com",
        "sbc.example.com.",
        "sbc_1.example.com",
        "sbc example.com",
        "sbc.exämple.com",
        "a" * 64 + ".example.com",
        ("a" * 61 + ".") * 4 + "co",  # 250 characters
        "",
    ],
)
def test_a_bad_fqdn_is_refused(resource, fqdn: str) -> None:
    error = refused(resource, {"trunks": {fqdn: {"sipSignalingPort": 5061}}})
    assert (error.status, error.inner_code) == (422, "InvalidTrunkFqdn")


def test_the_longest_fqdn_is_accepted(resource) -> None:
    fqdn = ("a" * 61 + ".") * 4 + "c"
    assert len(fqdn) == 249
    services.patch_configuration(resource, {"trunks": {fqdn: {"sipSignalingPort": 1}}})


@pytest.mark.parametrize("port", [0, -1, 65536, "5061", 5061.0, True, None])
def test_a_bad_port_is_refused(resource, port: Any) -> None:
    error = refused(resource, {"trunks": {"sbc.example.com": {"sipSignalingPort": port}}})
    assert (error.status, error.inner_code) == (422, "InvalidTrunkSipSignalingPort")


def test_a_new_trunk_needs_a_port(resource) -> None:
    error = refused(resource, {"trunks": {"sbc.example.com": {}}})
    assert error.inner_code == "InvalidTrunkSipSignalingPort"


def test_one_fqdn_twice_in_other_cases_is_refused(resource) -> None:
    error = refused(
        resource,
        {"trunks": {"a.example.com": {"sipSignalingPort": 1}, "A.example.com": None}},
    )
    assert (error.status, error.inner_code) == (400, "DuplicatedTrunk")


def test_port_bounds_are_accepted(resource) -> None:
    result = services.patch_configuration(
        resource,
        {
            "trunks": {
                "a.example.com": {"sipSignalingPort": 1},
                "b.example.com": {"sipSignalingPort": 65535},
            }
        },
    )
    assert len(result["trunks"]) == 2


# --- Routes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "   ", "a" * 257, "bad\nname", None, 7])
def test_a_bad_route_name_is_refused(configured, name: Any) -> None:
    error = refused(configured, {"routes": [{"name": name, "numberPattern": US}]})
    assert (error.status, error.inner_code) == (422, "InvalidRouteName")


def test_route_names_are_unique(configured) -> None:
    route = {"name": "same", "numberPattern": US}
    error = refused(configured, {"routes": [route, route]})
    assert (error.status, error.inner_code) == (400, "DuplicatedRoute")


@pytest.mark.parametrize(
    "pattern",
    ["", None, 5, "[0-9", "(\\d", "\\", "a" * 1025, "^\\+1\x07$", "((\\d*)*)*$", "\\d*" * 6 + "x"],
)
def test_a_bad_number_pattern_is_refused(configured, pattern: Any) -> None:
    error = refused(configured, {"routes": [{"name": "r", "numberPattern": pattern}]})
    assert (error.status, error.inner_code) == (422, "InvalidRouteNumberPattern")


def test_a_pattern_of_1024_characters_is_accepted(configured) -> None:
    # a long list of area codes, as real routes have
    codes = "|".join(str(code) for code in range(200, 453))
    pattern = f"^\\+1({codes})\\d{{7}}$"
    pattern = pattern.replace("(200|", "(" + "2" * (1024 - len(pattern) + 3) + "|")
    assert len(pattern) == 1024
    services.patch_configuration(configured, {"routes": [{"name": "r", "numberPattern": pattern}]})


def test_net_s_leading_quantified_anchor_is_taken_as_an_anchor(configured) -> None:
    # ACS's own samples write ^+[1-9][0-9]{3,23}$ (.NET reads ^+ as ^)
    services.patch_configuration(
        configured,
        {
            "routes": [
                {
                    "name": "r",
                    "numberPattern": "^+[1-9][0-9]{3,23}$",
                    "trunks": ["sbc1.example.com"],
                }
            ]
        },
    )
    assert services.route_call(configured, "14255550100") == []  # no enabled trunk yet
    assert services.compile_pattern("^+[1-9][0-9]{3,23}$").search("14255550100")


def test_a_route_may_only_name_trunks_that_exist(configured) -> None:
    error = refused(
        configured, {"routes": [{"name": "r", "numberPattern": US, "trunks": ["nope.example.com"]}]}
    )
    assert (error.status, error.inner_code) == (422, "MissingTrunk")


def test_a_route_may_name_a_trunk_added_in_the_same_patch(resource) -> None:
    result = services.patch_configuration(
        resource,
        {
            "trunks": {"new.example.com": {"sipSignalingPort": 5061}},
            "routes": [{"name": "r", "numberPattern": US, "trunks": ["NEW.example.com"]}],
        },
    )
    assert result["routes"][0]["trunks"] == ["new.example.com"]


def test_a_trunk_a_route_uses_cannot_be_deleted(configured) -> None:
    error = refused(configured, {"trunks": {"sbc1.example.com": None}})
    assert (error.status, error.inner_code) == (422, "MissingTrunk")
    assert "used by route 'us'" in error.message


def test_a_trunk_can_go_with_the_routes_that_used_it(configured) -> None:
    result = services.patch_configuration(
        configured,
        {"trunks": {"sbc1.example.com": None}, "routes": [{"name": "any", "numberPattern": ".*"}]},
    )
    assert list(result["trunks"]) == ["sbc2.example.com"]


def test_a_route_naming_one_trunk_twice_is_refused(configured) -> None:
    error = refused(
        configured,
        {
            "routes": [
                {
                    "name": "r",
                    "numberPattern": US,
                    "trunks": ["sbc1.example.com", "SBC1.example.com"],
                }
            ]
        },
    )
    assert (error.status, error.inner_code) == (400, "RouteWithDuplicatedTrunk")


def test_a_description_must_be_text(configured) -> None:
    error = refused(
        configured, {"routes": [{"name": "r", "numberPattern": US, "description": "x" * 1025}]}
    )
    assert error.inner_code == "InvalidRouteDescription"


@pytest.mark.parametrize(
    "body",
    [
        {"trunks": []},
        {"trunks": "sbc.example.com"},
        {"trunks": {"sbc.example.com": 5061}},
        {"routes": {}},
        {"routes": ["r"]},
        {"routes": [{"name": "r", "numberPattern": US, "trunks": "sbc1.example.com"}]},
        {"routes": [{"name": "r", "numberPattern": US, "trunks": [1]}]},
    ],
)
def test_a_body_of_the_wrong_shape_is_400(configured, body: Any) -> None:
    from apps.core.errors import ApiError

    before = rows()
    with pytest.raises(ApiError) as caught:
        services.patch_configuration(configured, body)
    assert caught.value.status == 400 and not isinstance(caught.value, SipConfigurationError)
    assert rows() == before


# --- Limits ---------------------------------------------------------------------------------
def test_at_most_250_trunks(resource) -> None:
    # given 250 trunks
    services.patch_configuration(
        resource, {"trunks": {f"t{n}.example.com": {"sipSignalingPort": 5060} for n in range(250)}}
    )

    # when one more is added, then it is refused
    error = refused(resource, {"trunks": {"t250.example.com": {"sipSignalingPort": 5060}}})
    assert error.inner_code == "TooManyTrunks"

    # but replacing one by another in one patch is fine
    services.patch_configuration(
        resource,
        {"trunks": {"t0.example.com": None, "t250.example.com": {"sipSignalingPort": 5060}}},
    )


def test_at_most_250_routes(configured) -> None:
    routes = [{"name": f"r{n}", "numberPattern": US} for n in range(251)]
    assert refused(configured, {"routes": routes}).inner_code == "TooManyRoutes"
    services.patch_configuration(configured, {"routes": routes[:250]})
    assert len(services.configuration(configured)["routes"]) == 250


# --- Isolation ------------------------------------------------------------------------------
def test_one_resource_never_sees_anothers_trunks(configured, other_resource) -> None:
    # given the other resource has a trunk of the same FQDN
    services.patch_configuration(
        other_resource, {"trunks": {"sbc1.example.com": {"sipSignalingPort": 7000}}}
    )

    # then each sees its own, and a route of one cannot name the other's trunk
    assert services.configuration(other_resource)["trunks"] == {
        "sbc1.example.com": {"sipSignalingPort": 7000}
    }
    assert services.configuration(configured)["trunks"]["sbc1.example.com"] == {
        "sipSignalingPort": 5061
    }
    error = refused(
        other_resource,
        {"routes": [{"name": "r", "numberPattern": US, "trunks": ["sbc2.example.com"]}]},
    )
    assert error.inner_code == "MissingTrunk"


# --- route_call ----------------------------------------------------------------------------
def enable(fqdn: str, **settings: Any) -> SipTrunk:
    trunk = SipTrunk.objects.get(fqdn=fqdn)
    return services.update_trunk_settings(
        trunk, services.check_trunk_settings({"enabled": True, **settings})
    )


def test_route_call_takes_the_first_matching_route_s_enabled_trunks_in_order(configured) -> None:
    # given a US route through both trunks, one enabled
    services.patch_configuration(
        configured,
        {
            "routes": [
                {
                    "name": "us",
                    "numberPattern": US,
                    "trunks": ["sbc2.example.com", "sbc1.example.com"],
                },
                {"name": "any", "numberPattern": r"^\+\d+$", "trunks": ["sbc1.example.com"]},
            ]
        },
    )
    enable("sbc1.example.com")
    assert [t.fqdn for t in services.route_call(configured, "+14255550100")] == ["sbc1.example.com"]

    # when both are enabled, then in the route's order
    enable("sbc2.example.com")
    assert [t.fqdn for t in services.route_call(configured, "+14255550100")] == [
        "sbc2.example.com",
        "sbc1.example.com",
    ]
    # and another number goes by the second route
    assert [t.fqdn for t in services.route_call(configured, "+442071838750")] == [
        "sbc1.example.com"
    ]


def test_route_call_with_no_match_or_no_number_is_empty(configured) -> None:
    enable("sbc1.example.com")
    enable("sbc2.example.com")
    services.patch_configuration(
        configured,
        {"routes": [{"name": "us", "numberPattern": US, "trunks": ["sbc1.example.com"]}]},
    )
    assert services.route_call(configured, "+442071838750") == []
    assert services.route_call(configured, "not a number") == []
    assert services.route_call(configured, "+1425555010\n") == []


def test_route_call_uses_search_semantics(configured) -> None:
    enable("sbc1.example.com")
    services.patch_configuration(
        configured,
        {"routes": [{"name": "uk", "numberPattern": "\\+44", "trunks": ["sbc1.example.com"]}]},
    )
    assert services.route_call(configured, "+442071838750")
    assert not services.route_call(configured, "+14255550100")


def test_route_call_leaves_out_trunks_whose_prefixes_exclude_the_number(configured) -> None:
    enable("sbc1.example.com", outbound_prefixes="+1425")
    assert services.route_call(configured, "+14255550100")
    assert services.route_call(configured, "+12065550100") == []


def test_route_call_sees_only_the_resources_routes(configured, other_resource) -> None:
    enable("sbc1.example.com")
    assert services.route_call(other_resource, "+14255550100") == []


def test_a_hostile_pattern_cannot_be_stored(configured) -> None:
    # These take seconds to minutes on a 15-digit number in Python's re; they are refused,
    # and checking them is quick.
    started = time.monotonic()
    for pattern in ["^(\\d*)*x$", "^(\\d|\\d|\\d)*x$", "^" + "\\d*" * 12 + "x$", "(\\d+)+$"]:
        assert services.pattern_problem(pattern), pattern
    assert time.monotonic() - started < 1


def test_accepted_patterns_match_quickly() -> None:
    for pattern in [
        US,
        "^\\+1(425|206|360)\\d{7}$",
        "^(\\+44|0)(20|121|161)\\d{7,8}$",
        "\\d+\\d+\\d+\\d+x",
    ]:
        assert not services.pattern_problem(pattern), pattern
        started = time.monotonic()
        services.compile_pattern(pattern).search("+" + "1" * 15)
        assert time.monotonic() - started < 0.5, pattern


# --- trunk_for_source ------------------------------------------------------------------------
def test_trunk_for_source_finds_the_enabled_trunk_whose_networks_hold_the_address(
    configured, other_resource
) -> None:
    # given two trunks with overlapping networks, and a disabled one holding the address
    enable("sbc1.example.com", allowed_networks="192.0.2.0/24\n2001:db8::/32")
    enable("sbc2.example.com", allowed_networks="192.0.2.128/25")
    services.patch_configuration(
        other_resource, {"trunks": {"x.example.com": {"sipSignalingPort": 5060}}}
    )
    services.update_trunk_settings(
        SipTrunk.objects.get(fqdn="x.example.com"),
        services.check_trunk_settings({"enabled": False, "allowed_networks": "192.0.2.5/32"}),
    )

    # then the narrowest enabled one wins
    assert services.trunk_for_source("192.0.2.5").fqdn == "sbc1.example.com"
    assert services.trunk_for_source("192.0.2.200").fqdn == "sbc2.example.com"
    assert services.trunk_for_source("2001:db8::7").fqdn == "sbc1.example.com"
    assert services.trunk_for_source("198.51.100.1") is None
    assert services.trunk_for_source("not an address") is None


def test_a_trunk_with_no_networks_accepts_no_calls_in(configured) -> None:
    enable("sbc1.example.com")
    assert services.trunk_for_source("192.0.2.5") is None


# --- The operator's settings ------------------------------------------------------------------
def test_settings_are_normalised() -> None:
    settings = services.check_trunk_settings(
        {
            "enabled": True,
            "address": "SBC.Carrier.NET",
            "transport": "tls",
            "digest_username": "spool",
            "digest_password": "s3cret",
            "allowed_networks": "192.0.2.7/24, 2001:DB8::/32\n192.0.2.0/24",
            "codecs": "PCMA, pcmu",
            "max_concurrent_calls": "30",
            "outbound_prefixes": ["+1", "+44"],
        }
    )
    assert settings.address == "sbc.carrier.net"
    assert settings.allowed_networks == ["192.0.2.0/24", "2001:db8::/32"]
    assert settings.codecs == ["pcma", "pcmu"]
    assert settings.max_concurrent_calls == 30
    assert settings.outbound_prefixes == ["+1", "+44"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("address", "not a host!"),
        ("transport", "sctp"),
        ("digest_username", "a\nb"),
        ("digest_password", "x" * 129),
        ("allowed_networks", "192.0.2.0/33"),
        ("allowed_networks", "everyone"),
        ("codecs", "opus"),
        ("codecs", "pcmu, pcmu"),
        ("max_concurrent_calls", "0"),
        ("max_concurrent_calls", "lots"),
        ("outbound_prefixes", "1"),
        ("outbound_prefixes", "+1-425"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidTrunkSettings) as caught:
        services.check_trunk_settings({field: value})
    assert caught.value.field == field


def test_a_blank_password_keeps_the_stored_one(configured) -> None:
    trunk = enable("sbc1.example.com", digest_password="s3cret")
    trunk = services.update_trunk_settings(trunk, services.check_trunk_settings({"enabled": True}))
    assert trunk.digest_password == "s3cret"
    trunk = services.update_trunk_settings(
        trunk, services.check_trunk_settings({"digest_password": ""})
    )
    assert trunk.digest_password == "" and not trunk.enabled


def test_a_digest_password_is_stored_sealed_and_read_back(configured) -> None:
    # given a trunk whose operator set a password
    trunk = enable("sbc1.example.com", digest_password="s3cret-Pa55")

    # then the row holds no trace of it, yet the trunk reads it back (the call needs it)
    stored = SipTrunk.objects.values_list("sealed_digest_password", flat=True).get(pk=trunk.pk)
    assert stored and "s3cret" not in stored and "Pa55" not in stored
    assert SipTrunk.objects.get(pk=trunk.pk).digest_password == "s3cret-Pa55"


def test_the_clear_passwords_of_before_are_sealed_by_the_migration(transactional_db) -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    # given the schema before sealing, with a trunk whose password is stored in the clear
    executor = MigrationExecutor(connection)
    executor.migrate([("pstn", "0001_initial")])
    old_apps = executor.loader.project_state([("pstn", "0001_initial")]).apps
    resource = old_apps.get_model("accounts", "Resource").objects.create(name="Old", slug="old")
    old_apps.get_model("pstn", "SipTrunk").objects.create(
        resource=resource, fqdn="sbc.old.example", signaling_port=5061, digest_password="clear1"
    )

    # when the migrations run
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    # then it is sealed, and still the same password
    trunk = SipTrunk.objects.get(fqdn="sbc.old.example")
    assert "clear1" not in trunk.sealed_digest_password
    assert trunk.digest_password == "clear1"


def test_srtp_needs_tls_and_is_stored(configured) -> None:
    # SDES sends the audio's keys in the SDP: over UDP or TCP anyone on the path reads them
    for transport in ("udp", "tcp"):
        with pytest.raises(InvalidTrunkSettings) as caught:
            services.check_trunk_settings({"transport": transport, "srtp": True})
        assert caught.value.field == "srtp"
    trunk = enable("sbc1.example.com", transport="tls", srtp=True)
    assert SipTrunk.objects.get(pk=trunk.pk).srtp is True


def test_the_edge_is_asked_for_the_trunks_codecs_in_order_and_strong_srtp_only() -> None:
    from apps.core.rtpengine import trunk_offer_flags

    plain = trunk_offer_flags(["pcmu", "pcma"], srtp=False).split()
    assert plain == [
        "codec-mask-all",
        "codec-transcode-PCMU",
        "codec-transcode-PCMA",
        "codec-transcode-telephone-event",
    ]
    encrypted = trunk_offer_flags(["pcma"], srtp=True).split()
    assert encrypted[:3] == [
        "codec-mask-all",
        "codec-transcode-PCMA",
        "codec-transcode-telephone-event",
    ]
    assert "RTP/SAVP" in encrypted
    assert {"SDES-no-NULL_HMAC_SHA1_80", "SDES-no-NULL_HMAC_SHA1_32"} <= set(encrypted)


def test_caller_id_rules_are_checked_and_stored(configured) -> None:
    with pytest.raises(InvalidTrunkSettings) as caught:
        services.check_trunk_settings({"caller_id_format": "national"})
    assert caught.value.field == "caller_id_format"
    trunk = enable("sbc1.example.com", caller_id_format="digits", assert_identity=True)
    stored = SipTrunk.objects.get(pk=trunk.pk)
    assert (stored.caller_id_format, stored.assert_identity) == ("digits", True)

"""Call Automation calls to phone numbers, end to end: the official Python SDK
(azure-communication-callautomation 1.6) against `manage.py serve`, with the tenant's trunks and
routes set by the official SipRoutingClient, enabled by the operator and pointing at sipp on
loopback playing two carriers' far ends: one that answers (and echoes), one that is busy.

The application creates a call to a phone (Janus's SIP plugin places it from the call's
AudioBridge room), hears CallConnected, plays a spoken prompt to it, adds a busy phone
(AddParticipantFailed with the SIP status), and hangs up (the phone gets its BYE). A call
created to the busy phone fails (CreateCallFailed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LiveSpool
from tests.e2e.test_call_automation import App
from tests.janus import require_janus
from tests.pstn.test_sip_phone_leg import far_end  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

# Numbers of their own: the session's server keeps other tests' calls (test_phone_calls.py).
PHONE, BUSY_PHONE = "+15550004441", "+15550005551"
ANSWERING, BUSY = "sbc-a.carrier.test", "sbc-b.carrier.test"


def connect_trunks(live: LiveSpool, connection: str, answering: int, busy: int) -> None:
    """The tenant sets a trunk to each far end and a route to each phone with the SDK; the
    operator enables the trunks and points them at sipp."""
    from azure.communication.phonenumbers.siprouting import (
        SipRoutingClient,
        SipTrunk,
        SipTrunkRoute,
    )

    client = SipRoutingClient.from_connection_string(connection, connection_verify=live.cert)
    client.set_trunks(
        [
            SipTrunk(fqdn=ANSWERING, sip_signaling_port=answering),
            SipTrunk(fqdn=BUSY, sip_signaling_port=busy),
        ]
    )
    client.set_routes(
        [
            SipTrunkRoute(name="answers", number_pattern=r"^\+1555000444\d$", trunks=[ANSWERING]),
            SipTrunkRoute(name="busy", number_pattern=r"^\+1555000555\d$", trunks=[BUSY]),
        ]
    )
    live.manage(
        "shell",
        "-c",
        "from apps.pstn.models import SipTrunk; "
        f"SipTrunk.objects.filter(resource__slug='{live.slug_of(connection)}')"
        ".update(enabled=True, address='127.0.0.1')",
    )


def wait_for_text(path: Path, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never reached {path.name}")


@pytest.mark.timeout(180)
def test_an_application_calls_a_phone_plays_to_it_adds_a_busy_one_and_hangs_up(
    live_spool: LiveSpool,
    tmp_path: Path,
    far_end: Callable[..., int],  # noqa: F811
) -> None:
    require_janus()
    from azure.communication.callautomation import (
        CallAutomationClient,
        PhoneNumberIdentifier,
        TextSource,
    )

    # given a resource with a number and routes through two trunks to sipp
    connection = live_spool.create_resource()
    caller_id = live_spool.give_number(connection)
    answering = far_end("uas_echo.xml")
    connect_trunks(live_spool, connection, answering, far_end("uas_busy.xml", echo=False))
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    source = PhoneNumberIdentifier(caller_id)
    app = App()
    try:
        # when the application calls the phone, which answers
        created = client.create_call(
            PhoneNumberIdentifier(PHONE),
            app.callbacks.url,
            source_caller_id_number=source,
            operation_context="outbound",
        )
        connected = app.wait_callback("CallConnected", 30)
        call = client.get_call_connection(created.call_connection_id)
        participants = list(call.list_participants())

        # and plays it a prompt, spoken offline
        call.play_media(TextSource(text="Hello from Spool."), operation_context="hello")
        played = app.wait_callback("PlayCompleted", 30)

        # and adds a phone that is busy
        added = call.add_participant(
            PhoneNumberIdentifier(BUSY_PHONE),
            source_caller_id_number=source,
            operation_context="add-busy",
        )
        failed = app.wait_callback("AddParticipantFailed", 30)
        after_failure = list(call.list_participants())

        # and hangs up
        call.hang_up(is_for_everyone=True)
        disconnected = app.wait_callback("CallDisconnected", 30)
    finally:
        app.stop()

    # then the call connected to the phone, which is its participant in the ACS shape
    assert connected["data"]["callConnectionId"] == created.call_connection_id
    assert connected["data"]["operationContext"] == "outbound"
    assert [p.identifier.raw_id for p in participants] == [f"4:{PHONE}"]
    assert isinstance(participants[0].identifier, PhoneNumberIdentifier)
    assert participants[0].identifier.properties["value"] == PHONE
    assert played["data"]["operationContext"] == "hello"

    # and the busy phone failed the add with its SIP status; the call went on
    assert added.invitation_id
    assert failed["data"]["participant"]["rawId"] == f"4:{BUSY_PHONE}"
    assert failed["data"]["operationContext"] == "add-busy"
    assert failed["data"]["resultInformation"]["code"] == 486
    assert failed["data"]["resultInformation"]["subCode"] == 560486
    assert [p.identifier.raw_id for p in after_failure] == [f"4:{PHONE}"]

    # and hanging up ended the call, and the phone got its BYE
    assert disconnected["data"]["callConnectionId"] == created.call_connection_id
    types = app.callback_types()
    assert (
        types.index("CallConnected")
        < types.index("PlayCompleted")
        < types.index("AddParticipantFailed")
    )
    assert types[-1] == "CallDisconnected"
    wait_for_text(tmp_path / f"sipp-{answering}.log", "BYE sip:")

    # and the call log has the phone's leg with its trunk and SIP call id
    script = (
        "from apps.calls.models import CallParticipant; "
        f"leg = CallParticipant.objects.get(call_id='{created.server_call_id}', "
        f"raw_id='4:{PHONE}'); print(leg.sip_trunk, bool(leg.sip_call_id), leg.state)"
    )
    out = live_spool.manage("shell", "-c", script).stdout.split()
    assert out[-3:] == [ANSWERING, "True", "left"]


@pytest.mark.timeout(120)
def test_a_call_created_to_a_busy_phone_fails(
    live_spool: LiveSpool,
    far_end: Callable[..., int],  # noqa: F811
) -> None:
    require_janus()
    from azure.communication.callautomation import CallAutomationClient, PhoneNumberIdentifier

    connection = live_spool.create_resource()
    caller_id = live_spool.give_number(connection)
    connect_trunks(
        live_spool, connection, far_end("uas_echo.xml"), far_end("uas_busy.xml", echo=False)
    )
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )
    app = App()
    try:
        created = client.create_call(
            PhoneNumberIdentifier(BUSY_PHONE),
            app.callbacks.url,
            source_caller_id_number=PhoneNumberIdentifier(caller_id),
        )
        failed = app.wait_callback("CreateCallFailed", 30)
        app.wait_callback("CallDisconnected", 30)
    finally:
        app.stop()

    assert failed["data"]["callConnectionId"] == created.call_connection_id
    assert failed["data"]["resultInformation"]["code"] == 486
    assert failed["data"]["resultInformation"]["subCode"] == 560486
    assert app.callback_types() == ["CreateCallFailed", "CallDisconnected"]

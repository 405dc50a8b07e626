"""A phone calls an application and presses keys as RFC 2833, end to end through `manage.py
serve`: the carrier's trunk (sipp, offering telephone-event) calls a number whose calls go to
the application, through Spool's SIP edge (Kamailio) and its rtpengine, which accepts the
events and reports them to the media process. The application answers with the official SDK
and recognizes the keys; Janus never sees payload type 101."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.automation.tones import require_tool
from tests.conftest import LiveSpool
from tests.e2e.test_call_automation import App, subscribe
from tests.e2e.test_incoming_phone_calls import CALLER, connect_carrier, sip_edge, wait_for_line
from tests.janus import require_janus
from tests.pstn.edge import require_kamailio, sipp_call

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_a_phone_calling_the_application_presses_keys_as_rfc_2833(
    live_spool: LiveSpool, tmp_path: Path
) -> None:
    require_janus()
    require_kamailio()
    require_tool("sipp")
    require_tool("rtpengine")
    from azure.communication.callautomation import (
        CallAutomationClient,
        PhoneNumberIdentifier,
        RecognizeInputType,
    )

    # given a number whose calls go to the application, through a trunk
    connection = live_spool.create_resource()
    number = live_spool.give_number(connection)
    connect_carrier(live_spool, connection, number, "application")
    wait_for_line(live_spool, number)
    app = App()
    subscribe(live_spool, connection, app.events.url, ["Microsoft.Communication.IncomingCall"])
    client = CallAutomationClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )

    # when a phone calls it (and presses 4, 2 three seconds after the answer)
    sipp = sipp_call(sip_edge(live_spool), number, tmp_path, seconds=8, keys="42")
    try:
        incoming = app.wait_event("IncomingCall", 20)
        assert incoming["from"]["rawId"] == f"4:{CALLER}"
        answered = client.answer_call(incoming["incomingCallContext"], app.callbacks.url)
        app.wait_callback("CallConnected")
        # and the application listens for two keys from it
        call = client.get_call_connection(answered.call_connection_id)
        call.start_recognizing_media(
            input_type=RecognizeInputType.DTMF,
            target_participant=PhoneNumberIdentifier(CALLER),
            dtmf_max_tones_to_collect=2,
            initial_silence_timeout=15,
            dtmf_inter_tone_timeout=5,
            operation_context="keys",
        )
        # then it hears them
        keys = app.wait_callback("RecognizeCompleted", 20, context="keys")
        # and the phone hangs up cleanly
        assert sipp.wait(timeout=20) == 0
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait()
        app.stop()

    assert keys["data"]["recognitionType"] == "dtmf"
    assert keys["data"]["dtmfResult"] == {"tones": ["four", "two"]}

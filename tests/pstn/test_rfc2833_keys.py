"""Keys phones press as RFC 2833, as the edge's rtpengine reports them to the media process
(apps/core/rtpengine.py, Answering._phone_key): the trunk's keys reach the call's DTMF path;
keys from Spool's side (in-band tones it plays, which rtpengine also hears), reports for other
calls and garbage do not. tests/e2e/test_phone_keys.py takes them through the real engines."""

from __future__ import annotations

import json

from apps.automation.call_media import CallMedia
from apps.automation.media import MediaProcess
from apps.automation.sip_line import IncomingPhoneCall
from apps.core.rtpengine import key_of

CALLER = "+15559990000"


def report(event: int, *, callid: str = "abc@carrier", source_tag: str = "trunk-tag") -> bytes:
    return json.dumps(
        {
            "callid": callid,
            "source_tag": source_tag,
            "tags": ["trunk-tag", "janus-tag"],
            "type": "DTMF",
            "timestamp": 1796424123,
            "source_ip": "198.51.100.7",
            "event": event,
            "duration": 120,
            "volume": 10,
        }
    ).encode()


def test_rfc_4733_event_codes_are_keys() -> None:
    assert [key_of({"type": "DTMF", "event": code}) for code in (0, 5, 9, 10, 11, 12, 15)] == [
        "0",
        "5",
        "9",
        "*",
        "#",
        "A",
        "D",
    ]
    assert key_of({"type": "DTMF", "event": 16}) == ""
    assert key_of({"type": "DTMF", "event": "5"}) == ""
    assert key_of({"type": "other", "event": 5}) == ""


async def test_only_the_trunks_keys_reach_the_calls_dtmf() -> None:
    process = MediaProcess("ws://127.0.0.1:1")
    media = process.calls["call-1"] = CallMedia("call-1", room=None)  # type: ignore[arg-type]
    phone = IncomingPhoneCall(
        None,  # type: ignore[arg-type]
        1,
        {
            "call_id": "abc@carrier",
            "username": f"sip:{CALLER}@carrier",
            "headers": {"X-Spool-From-Tag": "trunk-tag", "X-Spool-Source": "198.51.100.7"},
        },
        None,
    )
    media.phones[phone.raw_id] = phone  # type: ignore[assignment]
    heard: list[tuple[str, str, str]] = []

    async def dtmf(call_id: str, raw_id: str, tone: str) -> None:
        heard.append((call_id, raw_id, tone))

    process._dtmf = dtmf  # type: ignore[method-assign]

    await process._phone_key(report(5))
    await process._phone_key(report(11))
    await process._phone_key(report(7, source_tag="janus-tag"))  # a tone Spool played to it
    await process._phone_key(report(1, callid="other@carrier"))
    await process._phone_key(b"not json")
    await process._phone_key(b"[1, 2]")

    assert heard == [("call-1", f"4:{CALLER}", "5"), ("call-1", f"4:{CALLER}", "#")]

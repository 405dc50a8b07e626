"""The media process's rules, with the Janus room played by a fake that keeps time: operations
run one at a time in order, play ends in PlayCompleted, recognize follows the ACS DTMF options
(max tones, stop tones, initial silence, inter-tone timeout, barge-in), cancel stops what
plays, continuous DTMF reports each key, and a bridge that refuses a leg takes it out of the
call. tests/e2e/test_call_automation.py runs the same with Janus."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.automation import audio, media
from apps.automation.models import CallConnection, MediaOperation
from apps.calls.models import CallParticipant
from tests.automation.conftest import (
    api,
    callbacks_of,
    route_to_application,
    types_of,
    wait_for_callback,
)
from tests.automation.test_call_connections import C, ring_application
from tests.conftest import AcsClient
from tests.events.conftest import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


class FakeRoom:
    """An AudioBridge room whose files play for `seconds` each."""

    seconds = 0.3
    refuse_joins = False

    def __init__(self, url: str, room: str, on_event: Any, *, browsers: bool = False) -> None:
        self.on_event = on_event
        self.played: list[str] = []
        self.stopped: list[str] = []
        self.muted: dict[str, bool] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.played_to: list[str | None] = []
        self.to_of: dict[str, str | None] = {}
        self.aside: dict[str, bool] = {}  # set-aside legs -> linked
        self.moves: list[tuple[str, str]] = []  # ("aside" | "linked" | "back", raw id)

    async def set_aside(self, display: str, *, linked: bool) -> None:
        if display not in self.aside:
            self.aside[display] = linked
            self.moves.append(("linked" if linked else "aside", display))

    async def bring_back(self, display: str) -> None:
        if self.aside.pop(display, None) is not None:
            self.moves.append(("back", display))
            for file_id, timer in list(self.timers.items()):  # what played there stops
                if self.to_of.get(file_id) == display:
                    timer.cancel()
                    del self.timers[file_id]
                    await self._stopped(file_id)

    async def open(self, **kwargs: Any) -> None:
        pass

    async def join(self, display: str, offer: dict[str, Any]) -> dict[str, Any]:
        if FakeRoom.refuse_joins:
            raise RuntimeError("refused")
        return {"type": "answer", "sdp": "v=0"}

    async def trickle(self, display: str, candidate: Any) -> None:
        pass

    async def leave(self, display: str) -> None:
        pass

    async def mute(self, display: str, muted: bool) -> None:
        self.muted[display] = muted

    async def play(
        self, path: Path, file_id: str, *, loop: bool = False, to: str | None = None
    ) -> None:
        if to is not None and to not in self.aside:
            raise RuntimeError(f"{to} is not set aside")
        self.played.append(path.name)
        self.played_to.append(to)
        self.to_of[file_id] = to
        loop_ = asyncio.get_running_loop()
        self.timers[file_id] = loop_.call_later(
            self.seconds, lambda: asyncio.ensure_future(self._stopped(file_id))
        )

    async def _stopped(self, file_id: str) -> None:
        await self.on_event({"kind": "playStopped", "fileId": file_id})

    async def stop_play(self, file_id: str) -> None:
        self.stopped.append(file_id)
        timer = self.timers.pop(file_id, None)
        if timer is not None:
            timer.cancel()
            await self._stopped(file_id)

    async def start_recording(self, base: Path) -> Path:
        return base.with_suffix(".wav")

    async def stop_recording(self) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
def fake_media(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> media.MediaProcess:
    monkeypatch.setattr(media, "AudioBridgeRoom", FakeRoom)

    def named(name: str) -> Path:
        path = tmp_path / name
        path.write_bytes(b"OggS")
        return path

    monkeypatch.setattr(audio, "speech_file", lambda text, **kw: named(f"speech-{text[:8]}.opus"))
    monkeypatch.setattr(audio, "dtmf_file", lambda tones: named(f"dtmf-{tones}.opus"))
    return media.MediaProcess("ws://fake")


async def connected_call(
    connect: Any, resource: Any, acs: AcsClient, receiver: Receiver, process: media.MediaProcess
) -> tuple[Any, str, str]:
    caller, callee = await connect(), await connect()
    incoming = await ring_application(caller, callee, resource)
    answer = await api(
        acs,
        "POST",
        f"{C}:answer",
        {"incomingCallContext": incoming["incomingCallContext"], "callbackUri": receiver.url},
    )
    connection_id = answer.json()["callConnectionId"]
    call_id = incoming["serverCallId"]
    await process.handle(
        {
            "type": "signal",
            "call": call_id,
            "rawId": caller.raw_id,
            "identity": caller.raw_id.rsplit("_", 1)[-1],
            "channel": "test",
            "data": {"type": "offer", "sdp": "v=0"},
        }
    )
    await wait_for_callback(receiver, "CallConnected")
    return caller, connection_id, call_id


async def press(process: media.MediaProcess, call_id: str, raw_id: str, keys: str) -> None:
    for key in keys:
        await process.handle({"type": "dtmf", "call": call_id, "rawId": raw_id, "tone": key})
        await asyncio.sleep(0.02)


def recognize_body(raw_id: str, **dtmf: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"targetParticipant": {"rawId": raw_id}, "dtmfOptions": dtmf}
    if "initialSilenceTimeoutInSeconds" in dtmf:
        options["initialSilenceTimeoutInSeconds"] = dtmf.pop("initialSilenceTimeoutInSeconds")
    return {"recognizeInputType": "dtmf", "recognizeOptions": options, "operationContext": "menu"}


async def test_play_runs_and_completes_in_order(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,
) -> None:
    caller, connection_id, call_id = await connected_call(
        connect, resource, acs, receiver, fake_media
    )
    for text in ("first", "second"):
        answer = await api(
            acs,
            "POST",
            f"{C}/{connection_id}:play",
            {"playSources": [{"kind": "text", "text": {"text": text}}], "operationContext": text},
        )
        assert answer.status_code == 202
    await fake_media.handle({"type": "operations", "call": call_id})
    await asyncio.sleep(1.0)
    completed = [e for e in types_of(receiver) if e.startswith("Play")]
    assert completed == ["PlayStarted", "PlayCompleted", "PlayStarted", "PlayCompleted"]
    room = fake_media.calls[call_id].room
    assert room.played == ["speech-first.opus", "speech-second.opus"]
    states = await database_sync_to_async(
        lambda: list(MediaOperation.objects.values_list("state", flat=True))
    )()
    assert states == ["completed", "completed"]


@pytest.mark.parametrize(
    "options, keys, event, tones, subcode",
    [
        ({"maxTonesToCollect": 3}, "123", "RecognizeCompleted", ["one", "two", "three"], 8531),
        (
            {"maxTonesToCollect": 5, "stopTones": ["pound"]},
            "42#",
            "RecognizeCompleted",
            ["four", "two"],
            8514,
        ),
        (
            {"maxTonesToCollect": 5, "interToneTimeoutInSeconds": 1},
            "7",
            "RecognizeCompleted",
            ["seven"],
            8532,
        ),
        (
            {"maxTonesToCollect": 1, "initialSilenceTimeoutInSeconds": 1},
            "",
            "RecognizeFailed",
            None,
            8510,
        ),
    ],
)
async def test_recognize_follows_the_dtmf_options(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,
    options: dict[str, Any],
    keys: str,
    event: str,
    tones: list[str] | None,
    subcode: int,
) -> None:
    caller, connection_id, call_id = await connected_call(
        connect, resource, acs, receiver, fake_media
    )
    answer = await api(
        acs, "POST", f"{C}/{connection_id}:recognize", recognize_body(caller.raw_id, **options)
    )
    assert answer.status_code == 202, answer.content
    await fake_media.handle({"type": "operations", "call": call_id})
    await asyncio.sleep(0.2)
    await press(fake_media, call_id, caller.raw_id, keys)
    result = await wait_for_callback(receiver, event, timeout=5)
    assert result["data"]["resultInformation"]["subCode"] == subcode
    assert result["data"]["operationContext"] == "menu"
    if tones is not None:
        assert result["data"]["dtmfResult"]["tones"] == tones


async def test_a_key_during_the_prompt_interrupts_it(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,
) -> None:
    FakeRoom.seconds = 5
    try:
        caller, connection_id, call_id = await connected_call(
            connect, resource, acs, receiver, fake_media
        )
        body = recognize_body(caller.raw_id, maxTonesToCollect=1)
        body["playPrompt"] = {"kind": "text", "text": {"text": "menu"}}
        body["recognizeOptions"]["interruptPrompt"] = True
        await api(acs, "POST", f"{C}/{connection_id}:recognize", body)
        await fake_media.handle({"type": "operations", "call": call_id})
        await asyncio.sleep(0.3)
        await press(fake_media, call_id, caller.raw_id, "9")
        result = await wait_for_callback(receiver, "RecognizeCompleted", timeout=3)
        assert result["data"]["dtmfResult"]["tones"] == ["nine"]
        assert fake_media.calls[call_id].room.stopped  # the prompt was cut short
    finally:
        FakeRoom.seconds = 0.3


async def test_cancel_stops_what_plays(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,
) -> None:
    FakeRoom.seconds = 10
    try:
        caller, connection_id, call_id = await connected_call(
            connect, resource, acs, receiver, fake_media
        )
        await api(
            acs,
            "POST",
            f"{C}/{connection_id}:play",
            {
                "playSources": [{"kind": "text", "text": {"text": "long"}}],
                "playOptions": {"loop": True},
            },
        )
        await fake_media.handle({"type": "operations", "call": call_id})
        await wait_for_callback(receiver, "PlayStarted")
        await api(acs, "POST", f"{C}/{connection_id}:cancelAllMediaOperations")
        await fake_media.handle({"type": "cancel", "call": call_id})
        canceled = await wait_for_callback(receiver, "PlayCanceled", timeout=3)
        assert canceled["data"]["resultInformation"]["subCode"] == 8508
        assert "PlayCompleted" not in types_of(receiver)
    finally:
        FakeRoom.seconds = 0.3


async def test_send_dtmf_and_continuous_recognition(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,
) -> None:
    caller, connection_id, call_id = await connected_call(
        connect, resource, acs, receiver, fake_media
    )
    target = {"targetParticipant": {"rawId": caller.raw_id}}
    sent = await api(
        acs, "POST", f"{C}/{connection_id}:sendDtmfTones", {"tones": ["one", "pound"], **target}
    )
    assert sent.status_code == 202
    await fake_media.handle({"type": "operations", "call": call_id})
    await wait_for_callback(receiver, "SendDtmfTonesCompleted")
    assert fake_media.calls[call_id].room.played == ["dtmf-1#.opus"]

    started = await api(acs, "POST", f"{C}/{connection_id}:startContinuousDtmfRecognition", target)
    assert started.status_code == 200
    await press(fake_media, call_id, caller.raw_id, "5*")
    await asyncio.sleep(0.5)
    tones = [
        e["data"]["tone"]
        for e in callbacks_of(receiver)
        if e["type"].endswith("ContinuousDtmfRecognitionToneReceived")
    ]
    assert tones == ["five", "asterisk"]
    await api(acs, "POST", f"{C}/{connection_id}:stopContinuousDtmfRecognition", target)
    await press(fake_media, call_id, caller.raw_id, "1")
    await asyncio.sleep(0.3)
    assert types_of(receiver).count("ContinuousDtmfRecognitionToneReceived") == 2


async def test_a_leg_the_bridge_refuses_leaves_the_call(
    connect: Any,
    resource: Any,
    acs: AcsClient,
    receiver: Receiver,
    media_alive: None,
    fake_media: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FakeRoom, "refuse_joins", True)
    caller, callee = await connect(), await connect()
    await route_to_application(callee, resource)
    incoming = await ring_application(caller, callee, resource)
    await api(
        acs,
        "POST",
        f"{C}:answer",
        {"incomingCallContext": incoming["incomingCallContext"], "callbackUri": receiver.url},
    )
    await fake_media.handle(
        {
            "type": "signal",
            "call": incoming["serverCallId"],
            "rawId": caller.raw_id,
            "identity": caller.raw_id.rsplit("_", 1)[-1],
            "channel": "test",
            "data": {"type": "offer", "sdp": "v=0"},
        }
    )
    ended = await caller.until(type="call", event="stateChanged", state="Disconnected")
    assert ended["callEndReason"]["code"] == 503
    await wait_for_callback(receiver, "CallDisconnected")
    legs = await database_sync_to_async(
        lambda: list(CallParticipant.objects.values_list("state", flat=True))
    )()
    assert legs == ["left"]
    assert await database_sync_to_async(CallConnection.objects.count)() == 1

"""The built-in IVR behind the console's Try IVR: a small menu driven by the callbacks of the
connections it holds (callbacks.BUILT_IN_IVR_URI), calling services directly.

    CallConnected           -> record the call; speak the menu and collect one key ("menu")
    RecognizeCompleted 1/2  -> speak a greeting / the time ("branch"); any other key: "Sorry"
    RecognizeFailed         -> "Goodbye" ("branch")
    PlayCompleted/Failed of "branch" -> end the call for everyone

handle() runs in the worker, in each connection's callback order, and never raises: a raise
would have the callback retried, and a retry would run the step twice.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from apps.automation import services
from apps.automation.models import CallConnection, ConnectionState

logger = logging.getLogger(__name__)

MENU = "menu"
BRANCH = "branch"
WELCOME = "Welcome to Spool. Press 1 to hear a greeting. Press 2 to hear the time."
GREETING = "Hello from Spool! This call was answered by the built-in IVR. Goodbye."
SORRY = "Sorry, that is not an option. Goodbye."
GOODBYE = "Goodbye."
MENU_TIMEOUT_SECONDS = 10


def handle(event: dict[str, Any]) -> None:
    """React to one callback (a CloudEvent dict) of a connection the built-in IVR holds."""
    name = str(event.get("type", "")).removeprefix("Microsoft.Communication.")
    data = event.get("data") or {}
    try:
        connection = (
            CallConnection.objects.select_related("call", "resource")
            .filter(pk=str(data.get("callConnectionId", "")))
            .first()
        )
        if connection is None or connection.state == ConnectionState.DISCONNECTED:
            return
        _step(connection, name, data)
    except Exception:
        logger.exception(
            "built-in IVR: %s of call connection %s", name, data.get("callConnectionId")
        )


def _step(connection: CallConnection, name: str, data: dict[str, Any]) -> None:
    context = data.get("operationContext")
    if name == "CallConnected":
        _answer(connection)
    elif name == "RecognizeCompleted" and context == MENU:
        tones = (data.get("dtmfResult") or {}).get("tones") or []
        if tones == ["one"]:
            _say(connection, GREETING)
        elif tones == ["two"]:
            _say(connection, f"The time is {timezone.now():%H:%M} UTC. Goodbye.")
        else:
            _say(connection, SORRY)
    elif name == "RecognizeFailed" and context == MENU:
        _say(connection, GOODBYE)
    elif name in ("PlayCompleted", "PlayFailed") and context == BRANCH:
        services.terminate(connection)


def _answer(connection: CallConnection) -> None:
    if connection.operations.exists():
        return  # a redelivered CallConnected: the menu is already under way
    try:
        services.start_recording(connection.resource, {"callConnectionId": str(connection.pk)})
    except Exception:  # the menu goes on without a recording
        logger.exception("built-in IVR: could not record call connection %s", connection.pk)
    services.recognize(
        connection,
        {
            "recognizeInputType": "dtmf",
            "playPrompt": {"kind": "text", "text": {"text": WELCOME}},
            "recognizeOptions": {
                "targetParticipant": {"rawId": connection.call.caller_raw_id},
                "interruptPrompt": True,
                "initialSilenceTimeoutInSeconds": MENU_TIMEOUT_SECONDS,
                "dtmfOptions": {"maxTonesToCollect": 1},
            },
            "operationContext": MENU,
        },
    )


def _say(connection: CallConnection, text: str) -> None:
    services.play(
        connection,
        {"playSources": [{"kind": "text", "text": {"text": text}}], "operationContext": BRANCH},
    )

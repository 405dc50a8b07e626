"""Call Automation's media operations, queued for the media process: play (to everyone or
to some participants), recognize (DTMF keys; by speech: choices, free speech, speech or keys),
send DTMF, cancel them all, continuous DTMF and hold.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.automation import callbacks
from apps.automation.exceptions import InvalidAutomationRequest, NotSupported
from apps.automation.models import CallConnection, MediaOperation, OperationKind, OperationState
from apps.automation.services.shared import (
    MAX_OPERATION_CONTEXT,
    _live,
    _operation_uri,
    _text,
    access_participant,
    participants,
)
from apps.calls import media_link
from apps.calls.models import CallParticipant
from apps.core.identifiers import raw_id_of
from apps.core.outbound import check_url

MAX_PLAY_SOURCES = 10
MAX_TEXT_LENGTH = 4000
MAX_TONES = 50
MAX_PLAY_TO = 50
# ACS names DTMF tones by word; clients send the key itself.
TONE_NAMES = {
    **{
        str(d): n for d, n in enumerate("zero one two three four five six seven eight nine".split())
    },
    "*": "asterisk",
    "#": "pound",
    "A": "a",
    "B": "b",
    "C": "c",
    "D": "d",
}
TONE_KEYS = {name: key for key, name in TONE_NAMES.items()}


# --- Media operations ------------------------------------------------------------------------
def _queue(
    connection: CallConnection, kind: str, request: dict[str, Any], body: dict[str, Any]
) -> MediaOperation:
    _live(connection)
    with transaction.atomic():
        if body.get("interruptCallMediaOperation") is True:
            _cancel_operations(connection, emit=True)
        operation = MediaOperation.objects.create(
            connection=connection,
            kind=kind,
            request=request,
            operation_context=_text(body, "operationContext", limit=MAX_OPERATION_CONTEXT),
            callback_uri=_operation_uri(body),
            created_at=timezone.now(),
        )
        media_link.send_after_commit({"type": "operations", "call": str(connection.call_id)})
    return operation


def check_play_source(source: Any, field: str) -> dict[str, Any]:
    """A PlaySource reduced to what the media process plays: {"file": url} or {"text", "voice",
    "locale"}. Raises InvalidAutomationRequest."""
    if not isinstance(source, dict):
        raise InvalidAutomationRequest(f"{field} must be a play source.", target=field)
    kind = str(source.get("kind", "")).lower()
    if kind == "file":
        url = (
            (source.get("file") or {}).get("uri") if isinstance(source.get("file"), dict) else None
        )
        return {"file": check_url(url, target=f"{field}.file.uri")}
    if kind in ("text", "ssml"):
        inner = source.get(kind)
        if not isinstance(inner, dict):
            raise InvalidAutomationRequest(f"{field}.{kind} is required.", target=field)
        text = inner.get("text") if kind == "text" else inner.get("ssmlText")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT_LENGTH:
            raise InvalidAutomationRequest(
                f"{field}: the text must be 1 to {MAX_TEXT_LENGTH} characters.", target=field
            )
        return {
            kind: text,
            "voice": str(inner.get("voiceName") or ""),
            "locale": str(inner.get("sourceLocale") or ""),
        }
    raise InvalidAutomationRequest(f"{field}.kind must be file, text or ssml.", target=field)


def play(connection: CallConnection, body: dict[str, Any]) -> MediaOperation:
    sources = body.get("playSources")
    if not isinstance(sources, list) or not 1 <= len(sources) <= MAX_PLAY_SOURCES:
        raise InvalidAutomationRequest(
            f"playSources must list 1 to {MAX_PLAY_SOURCES} sources.", target="playSources"
        )
    checked = [check_play_source(s, f"playSources[{i}]") for i, s in enumerate(sources)]
    to = _play_to(connection, body.get("playTo"))
    options = body.get("playOptions") or {}
    loop = bool(options.get("loop")) if isinstance(options, dict) else False
    request = {"sources": checked, "loop": loop, "to": to}
    return _queue(connection, OperationKind.PLAY, request, body)


def _play_to(connection: CallConnection, play_to: Any) -> list[str] | None:
    """The raw ids a play is for; None for the whole call (playTo left out or naming everyone).
    The media process sets the others' way apart (apps/automation/sideroom.py)."""
    if not play_to:
        return None
    if not isinstance(play_to, list) or len(play_to) > MAX_PLAY_TO:
        raise InvalidAutomationRequest(
            f"playTo must list 1 to {MAX_PLAY_TO} participants.", target="playTo"
        )
    named = []
    for index, model in enumerate(play_to):
        raw_id = raw_id_of(model) if isinstance(model, dict) else None
        if not raw_id:
            raise InvalidAutomationRequest(
                f"playTo[{index}] must be a communication identifier.", target="playTo"
            )
        named.append(access_participant(connection, raw_id).raw_id)
    everyone = {leg.raw_id for leg in participants(connection)}
    return None if set(named) == everyone else sorted(set(named))


def recognize(connection: CallConnection, body: dict[str, Any]) -> MediaOperation:
    """Queue a recognize: DTMF keys; or, by speech (pocketsphinx, offline, en-US), choices, free
    speech, or free speech or keys, whichever the target gives first. Raises
    InvalidAutomationRequest, NotSupported, CallConnectionNotFound; nothing is queued then."""
    kind = body.get("recognizeInputType")
    if kind in ("choices", "speech", "speechOrDtmf"):
        return _recognize_by_speech(connection, body, kind)
    if kind != "dtmf":
        raise NotSupported(
            "recognizeInputType must be dtmf, speech, speechOrDtmf or choices.",
            target="recognizeInputType",
        )
    options = body.get("recognizeOptions")
    if not isinstance(options, dict):
        raise InvalidAutomationRequest("recognizeOptions is required.", target="recognizeOptions")
    target = access_participant(connection, raw_id_of(options.get("targetParticipant")) or "")
    request = {
        "target": target.raw_id,
        "prompts": _prompts(body),
        "interruptPrompt": bool(options.get("interruptPrompt", False)),
        "initialSilenceSeconds": _seconds(options, "initialSilenceTimeoutInSeconds", 5, 300),
        **_dtmf_request(options),
    }
    return _queue(connection, OperationKind.RECOGNIZE, request, body)


def _prompts(body: dict[str, Any]) -> list[dict[str, Any]]:
    prompts = body.get("playPrompts") or ([body["playPrompt"]] if body.get("playPrompt") else [])
    if not isinstance(prompts, list) or len(prompts) > MAX_PLAY_SOURCES:
        raise InvalidAutomationRequest("playPrompts must be a list.", target="playPrompts")
    return [check_play_source(p, f"playPrompts[{i}]") for i, p in enumerate(prompts)]


def _dtmf_request(options: dict[str, Any]) -> dict[str, Any]:
    """How keys are collected (dtmf, and the keys of speechOrDtmf), from dtmfOptions."""
    dtmf = options.get("dtmfOptions")
    dtmf = {} if dtmf is None else dtmf
    if not isinstance(dtmf, dict):
        raise InvalidAutomationRequest("dtmfOptions must be an object.", target="dtmfOptions")
    stop_tones = dtmf.get("stopTones") or []
    if not isinstance(stop_tones, list) or any(t not in TONE_KEYS for t in stop_tones):
        raise InvalidAutomationRequest(
            "stopTones must list tones (zero ... nine, asterisk, pound, a ... d).",
            target="stopTones",
        )
    return {
        "interToneSeconds": _seconds(dtmf, "interToneTimeoutInSeconds", 2, 60),
        "maxTones": _seconds(dtmf, "maxTonesToCollect", 1, MAX_TONES),
        "stopTones": [TONE_KEYS[t] for t in stop_tones],
    }


def _seconds(options: dict[str, Any], field: str, default: int, most: int) -> int:
    value = options.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidAutomationRequest(f"{field} must be 1 to {most}.", target=field)
    return value


def send_dtmf(connection: CallConnection, body: dict[str, Any]) -> MediaOperation:
    tones = body.get("tones")
    if (
        not isinstance(tones, list)
        or not 1 <= len(tones) <= 18
        or any(t not in TONE_KEYS for t in tones)
    ):
        raise InvalidAutomationRequest(
            "tones must list 1 to 18 tones (zero ... nine, asterisk, pound, a ... d).",
            target="tones",
        )
    target = access_participant(connection, raw_id_of(body.get("targetParticipant")) or "")
    request = {"tones": "".join(TONE_KEYS[t] for t in tones), "to": [target.raw_id]}
    return _queue(connection, OperationKind.SEND_DTMF, request, body)


def cancel_all(connection: CallConnection) -> None:
    _live(connection)
    with transaction.atomic():
        _cancel_operations(connection, emit=True)
        media_link.send_after_commit({"type": "cancel", "call": str(connection.call_id)})


def _cancel_operations(connection: CallConnection, *, emit: bool) -> None:
    """Cancel queued operations here; a running one is stopped by the media process, which
    sends its Canceled callback."""
    queued = list(connection.operations.filter(state=OperationState.QUEUED))
    now = timezone.now()
    MediaOperation.objects.filter(pk__in=[op.pk for op in queued]).update(
        state=OperationState.CANCELED, ended_at=now
    )
    if emit:
        for operation in queued:
            callbacks.emit_operation_end(operation, OperationState.CANCELED)
    media_link.send_after_commit({"type": "cancel", "call": str(connection.call_id)})


def set_continuous_dtmf(connection: CallConnection, body: dict[str, Any], on: bool) -> None:
    _live(connection)
    access_participant(connection, raw_id_of(body.get("targetParticipant")) or "")
    CallConnection.objects.filter(pk=connection.pk).update(continuous_dtmf=on)


def hold(connection: CallConnection, body: dict[str, Any], on: bool) -> None:
    """Hold: the participant neither hears the call nor is heard, and hears the hold music
    (playSourceInfo) if any, looped, until unheld. HoldFailed follows if the media plane
    cannot set the participant apart or the music cannot be played."""
    _live(connection)
    leg = access_participant(connection, raw_id_of(body.get("targetParticipant")) or "")
    music = None
    if on and body.get("playSourceInfo") is not None:
        music = check_play_source(body["playSourceInfo"], "playSourceInfo")
    message = {
        "type": "hold",
        "call": str(connection.call_id),
        "rawId": leg.raw_id,
        "on": on,
        "music": music,
        "connection": str(connection.pk),
        "operationContext": _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT),
        "callbackUri": _operation_uri(body),
    }
    with transaction.atomic():
        CallParticipant.objects.filter(pk=leg.pk).update(is_on_hold=on)
        media_link.send_after_commit(message)


# --- Recognize choices by speech -------------------------------------------------------------
MAX_CHOICES = 30
MAX_PHRASES = 20
MAX_PHRASE_LENGTH = 100
MAX_CHOICE_SILENCE = 20  # seconds: ACS's most for choices (and here for all speech)
MAX_END_SILENCE_MS = 10000
DEFAULT_END_SILENCE_MS = 500  # pocketsphinx's endpointer window (300 ms) is the least in effect
PHRASE_REFUSED = re.compile(r"[^A-Za-z' ,.?!-]")  # the recognizer's dictionary is English words
SPEECH_LANGUAGES = ("en-us", "en")


def _recognize_by_speech(
    connection: CallConnection, body: dict[str, Any], kind: str
) -> MediaOperation:
    """Recognize by speech (pocketsphinx, offline, en-US; apps/automation/speech.py in the
    media process): `choices`, one of the application's choices, said or keyed (a choice's
    `tone`); `speech`, free speech to text, one utterance ended by `endSilenceTimeoutInMs`;
    `speechOrDtmf`, that or keys collected under dtmfOptions, whichever comes first."""
    options = body.get("recognizeOptions")
    if not isinstance(options, dict):
        raise InvalidAutomationRequest("recognizeOptions is required.", target="recognizeOptions")
    target = access_participant(connection, raw_id_of(options.get("targetParticipant")) or "")
    language = options.get("speechLanguage") or "en-US"
    if not isinstance(language, str) or language.lower() not in SPEECH_LANGUAGES:
        raise NotSupported(
            "speechLanguage: speech is recognized in en-US only here.", target="speechLanguage"
        )
    if options.get("speechRecognitionModelEndpointId"):
        raise NotSupported(
            "Custom speech models are not offered here.",
            target="speechRecognitionModelEndpointId",
        )
    request: dict[str, Any] = {
        "inputType": kind,
        "target": target.raw_id,
        "prompts": _prompts(body),
        "interruptPrompt": bool(options.get("interruptPrompt", False)),
        "initialSilenceSeconds": _seconds(
            options, "initialSilenceTimeoutInSeconds", 5, MAX_CHOICE_SILENCE
        ),
    }
    if kind == "choices":
        request["choices"] = _choices(options)
    else:
        request["endSilenceMs"] = _end_silence_ms(options)
    if kind == "speechOrDtmf":
        request.update(_dtmf_request(options))
    return _queue(connection, OperationKind.RECOGNIZE, request, body)


def _end_silence_ms(options: dict[str, Any]) -> int:
    speech_options = options.get("speechOptions")
    speech_options = {} if speech_options is None else speech_options
    if not isinstance(speech_options, dict):
        raise InvalidAutomationRequest("speechOptions must be an object.", target="speechOptions")
    value = speech_options.get("endSilenceTimeoutInMs")
    if value is None:
        return DEFAULT_END_SILENCE_MS
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_END_SILENCE_MS
    ):
        raise InvalidAutomationRequest(
            f"endSilenceTimeoutInMs must be 1 to {MAX_END_SILENCE_MS}.",
            target="endSilenceTimeoutInMs",
        )
    return value


def _choices(options: dict[str, Any]) -> list[dict[str, Any]]:
    from apps.automation import speech

    raw = options.get("choices")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CHOICES:
        raise InvalidAutomationRequest(
            f"choices must list 1 to {MAX_CHOICES} choices.", target="choices"
        )
    choices, labels, tones = [], set(), set()
    for index, choice in enumerate(raw):
        field = f"choices[{index}]"
        if not isinstance(choice, dict):
            raise InvalidAutomationRequest(f"{field} must be an object.", target=field)
        label = _text(choice, "label", limit=MAX_PHRASE_LENGTH, required=True)
        if label in labels:
            raise InvalidAutomationRequest(f"{field}.label is not unique.", target=field)
        labels.add(label)
        phrases = _choice_phrases(choice.get("phrases"), f"{field}.phrases", speech)
        tone = choice.get("tone")
        if tone is not None and tone not in TONE_KEYS:
            raise InvalidAutomationRequest(
                f"{field}.tone must be a tone (zero ... nine, asterisk, pound, a ... d).",
                target=field,
            )
        if tone is not None and tone in tones:
            raise InvalidAutomationRequest(f"{field}.tone is not unique.", target=field)
        if tone is not None:
            tones.add(tone)
        if not phrases and tone is None:
            raise InvalidAutomationRequest(f"{field} needs phrases or a tone.", target=field)
        choices.append(
            {"label": label, "phrases": phrases, "tone": TONE_KEYS[tone] if tone else ""}
        )
    return choices


def _choice_phrases(value: Any, field: str, speech: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_PHRASES:
        raise InvalidAutomationRequest(
            f"{field} must list at most {MAX_PHRASES} phrases.", target=field
        )
    phrases: list[str] = []
    for phrase in value:
        if not isinstance(phrase, str) or not 1 <= len(phrase) <= MAX_PHRASE_LENGTH:
            raise InvalidAutomationRequest(
                f"{field}: each phrase is 1 to {MAX_PHRASE_LENGTH} characters.", target=field
            )
        normalized = speech.normalize(phrase)
        if not normalized or PHRASE_REFUSED.search(phrase):
            raise InvalidAutomationRequest(
                f"{field}: {phrase!r} must be words of letters (spell numbers as words).",
                target=field,
            )
        unknown = speech.unknown_words(normalized)
        if unknown:
            raise InvalidAutomationRequest(
                f"{field}: the recognizer does not know {', '.join(unknown)!r}.", target=field
            )
        if normalized not in phrases:
            phrases.append(normalized)
    return phrases

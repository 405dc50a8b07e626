"""Recognize in the media process (apps/automation/media.py): the Recognizing mixin of
MediaProcess collects DTMF keys under the ACS rules, and listens by speech
(apps/automation/speech.py) for choices (or a choice's tone), free speech, or free speech or
keys, while the prompts play.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from apps.automation import services, speech
from apps.automation.call_media import CallMedia, PlayFailure
from apps.automation.media_steps import _choice_data, _finish, _speech_data
from apps.automation.models import MediaOperation, OperationState
from apps.calls.sfu import JanusError

logger = logging.getLogger(__name__)

RECOGNIZE_MAX_TONES = (200, 8531, "Action completed, max digits received.")
RECOGNIZE_STOP_TONE = (200, 8514, "Action completed as stop tone was detected.")
RECOGNIZE_INTER_TONE = (200, 8532, "Action completed, interdigit silence timeout reached.")
RECOGNIZE_SILENCE = (400, 8510, "Action failed, initial silence timeout reached.")
RECOGNIZE_PROMPT_FAILED = (
    500,
    8511,
    "Action failed, encountered failure while trying to play the prompt.",
)
RECOGNIZE_SPEECH_MATCHED = (200, 8545, "Action completed, speech option matched.")
RECOGNIZE_TONE_MATCHED = (200, 8533, "Action completed, DTMF option matched.")
RECOGNIZE_NOT_MATCHED = (400, 8547, "Action failed, speech option not matched.")
RECOGNIZE_WRONG_TONE = (400, 8534, "Action failed, incorrect tone detected.")
RECOGNIZE_NO_AUDIO = (500, 8500, "Action failed, the participant's audio could not be reached.")
# Free speech: the ACS SDKs' reason codes have no subcode of their own for speech recognized
# (MediaEventReasonCode: CompletedSuccessfully 0; RecognizeSpeechNotRecognized 8563).
RECOGNIZE_SPEECH_RECOGNIZED = (200, 0, "Action completed successfully.")
RECOGNIZE_SPEECH_NOT_RECOGNIZED = (400, 8563, "Action failed, speech could not be recognized.")


class Recognizing:
    """MediaProcess's recognize operations; MediaProcess gives the prompts and plays them."""

    if TYPE_CHECKING:

        async def _prompt(self, source: dict[str, Any], index: int = 0) -> Path: ...

        async def _play(
            self, media: CallMedia, path: Path, to: list[str] | None = None
        ) -> None: ...

        def _set_aside(
            self, media: CallMedia, targets: list[str] | None
        ) -> AbstractAsyncContextManager[list[str] | None]: ...

    async def _recognize(self, media: CallMedia, operation: MediaOperation) -> None:
        request = operation.request
        if request.get("inputType") in ("choices", "speech", "speechOrDtmf"):
            await self._recognize_choices(media, operation)
            return
        target = request["target"]
        while not media.tones.empty():  # keys pressed before the recognize do not count
            media.tones.get_nowait()
        try:
            prompt = await self._prompt_task(media, request["prompts"], target)
        except PlayFailure:
            await database_sync_to_async(_finish)(
                operation, OperationState.FAILED, result=RECOGNIZE_PROMPT_FAILED
            )
            return
        tones: list[str] = []
        try:
            result = await self._collect(media, request, target, tones, prompt)
        finally:
            if prompt is not None and not prompt.done():
                prompt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prompt
        names = [services.TONE_NAMES[tone] for tone in tones]
        if result == RECOGNIZE_SILENCE:
            await database_sync_to_async(_finish)(operation, OperationState.FAILED, result=result)
            return
        data = {"recognitionType": "dtmf", "dtmfResult": {"tones": names}}
        await database_sync_to_async(_finish)(
            operation, OperationState.COMPLETED, result=result, data=data, tones=names
        )

    async def _collect(
        self,
        media: CallMedia,
        request: dict[str, Any],
        target: str,
        tones: list[str],
        prompt: asyncio.Task[None] | None,
        first: str | None = None,
    ) -> tuple[int, int, str]:
        """Wait for the target's keys under the ACS rules (`first`: a key already taken);
        returns the result."""
        while True:
            if tones:
                timeout: float = request["interToneSeconds"]
            elif prompt is not None and not prompt.done():
                timeout = 3600.0  # the initial silence counts from the prompt's end
            else:
                timeout = request["initialSilenceSeconds"]
            if first is not None:
                tone: str | None = first
                first = None
            else:
                tone = await self._next_tone(media, target, timeout, prompt if not tones else None)
            if tone is None:
                if prompt is not None and not prompt.done() and not tones:
                    continue
                return RECOGNIZE_INTER_TONE if tones else RECOGNIZE_SILENCE
            if tone == "":  # the prompt ended: the initial silence starts now
                prompt = None
                continue
            if prompt is not None and not prompt.done() and request["interruptPrompt"]:
                prompt.cancel()
            if tone in request["stopTones"]:
                return RECOGNIZE_STOP_TONE
            tones.append(tone)
            if len(tones) >= request["maxTones"]:
                return RECOGNIZE_MAX_TONES

    async def _next_tone(
        self,
        media: CallMedia,
        target: str,
        timeout: float,
        prompt: asyncio.Task[None] | None,
    ) -> str | None:
        """The target's next key; "" when the prompt ends first; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(media.tones.get())}
            if prompt is not None and not prompt.done():
                waiters.add(asyncio.ensure_future(asyncio.shield(prompt)))
            done, pending = await asyncio.wait(
                waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if not done:
                return None
            for waiter in done:
                value = (
                    waiter.result()
                    if not waiter.cancelled() and waiter.exception() is None
                    else None
                )
                if isinstance(value, tuple):
                    raw_id, tone = value
                    if raw_id == target:
                        return tone
                elif prompt is not None and prompt.done():
                    return ""

    # --- recognize by speech: choices (or a choice's tone), free speech (or keys) --------------
    async def _recognize_choices(self, media: CallMedia, operation: MediaOperation) -> None:
        """Listen to the target (apps/automation/speech.py) while the prompt plays, for one of
        the choices (a key picks the choice whose tone it is) or for free speech (speechOrDtmf:
        a first key turns it into a DTMF recognize). One utterance decides."""
        request = operation.request
        while not media.tones.empty():  # keys pressed before the recognize do not count
            media.tones.get_nowait()
        choices = None
        if request["inputType"] == "choices":
            choices = [
                speech.Choice(c["label"], c["phrases"], c["tone"]) for c in request["choices"]
            ]
        listener = speech.Listener(
            media.room,
            request["target"],
            choices,
            end_silence=request.get("endSilenceMs", 0) / 1000,
        )
        prompt: asyncio.Task[None] | None = None
        try:
            try:
                await listener.open()
            except JanusError as error:
                logger.warning("cannot listen to %s: %s", request["target"], error)
                await database_sync_to_async(_finish)(
                    operation, OperationState.FAILED, result=RECOGNIZE_NO_AUDIO
                )
                return
            try:
                prompt = await self._prompt_task(media, request["prompts"], request["target"])
            except PlayFailure:
                await database_sync_to_async(_finish)(
                    operation, OperationState.FAILED, result=RECOGNIZE_PROMPT_FAILED
                )
                return
            result, data = await self._hear(media, request, listener, choices or [], prompt)
        finally:
            if prompt is not None and not prompt.done():
                prompt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prompt
            await listener.close()
        state = OperationState.COMPLETED if result[0] < 300 else OperationState.FAILED
        tones = data["dtmfResult"]["tones"] if data and "dtmfResult" in data else None
        await database_sync_to_async(_finish)(
            operation, state, result=result, data=data, tones=tones
        )

    async def _prompt_task(
        self, media: CallMedia, sources: list[dict[str, Any]], target: str
    ) -> asyncio.Task[None] | None:
        """The prompts, playing in the background to the participant recognized, alone (None
        without prompts). Raises PlayFailure."""
        if not sources:
            return None
        paths = [await self._prompt(source) for source in sources]

        async def play_prompts() -> None:
            async with self._set_aside(media, [target]) as to:
                for path in paths:
                    await self._play(media, path, to)

        return asyncio.create_task(play_prompts())

    async def _hear(
        self,
        media: CallMedia,
        request: dict[str, Any],
        listener: speech.Listener,
        choices: list[speech.Choice],
        prompt: asyncio.Task[None] | None,
    ) -> tuple[tuple[int, int, str], dict[str, Any] | None]:
        kind_of_input = request["inputType"]
        unheard = (
            RECOGNIZE_NOT_MATCHED if kind_of_input == "choices" else RECOGNIZE_SPEECH_NOT_RECOGNIZED
        )
        speaking = False
        while True:
            if speaking:
                timeout = speech.MAX_SPEECH_SECONDS + 5
            elif prompt is not None and not prompt.done():
                timeout = 3600.0  # the initial silence counts from the prompt's end
            else:
                timeout = float(request["initialSilenceSeconds"])
            kind, value = await self._next_input(
                media, request["target"], listener, prompt, timeout, keys=kind_of_input != "speech"
            )
            if kind == "timeout":
                return (unheard if speaking else RECOGNIZE_SILENCE), None
            if kind == "prompt":
                prompt = None
            elif kind == "speech":
                speaking = True
                if prompt is not None and not prompt.done() and request["interruptPrompt"]:
                    prompt.cancel()
            elif kind == "heard":
                if isinstance(value, speech.Said) and value.text:
                    said: dict[str, Any] = {"speech": value.text}
                    if value.confidence is not None:
                        said["confidence"] = value.confidence
                    return RECOGNIZE_SPEECH_RECOGNIZED, _speech_data(said)
                if not isinstance(value, speech.Heard):
                    return unheard, None
                heard = {
                    "label": value.label,
                    "recognizedPhrase": value.phrase,
                    "confidence": value.confidence,
                }
                return RECOGNIZE_SPEECH_MATCHED, _choice_data(heard)
            elif kind == "tone" and kind_of_input == "speechOrDtmf":
                # The first key makes it a DTMF recognize, collected by the DTMF rules.
                tones: list[str] = []
                result = await self._collect(
                    media, request, request["target"], tones, prompt, first=value
                )
                names = [services.TONE_NAMES[tone] for tone in tones]
                return result, {"recognitionType": "dtmf", "dtmfResult": {"tones": names}}
            elif kind == "tone":
                for choice in choices:
                    if choice.tone and choice.tone == value:
                        return RECOGNIZE_TONE_MATCHED, _choice_data({"label": choice.label})
                return RECOGNIZE_WRONG_TONE, None

    async def _next_input(
        self,
        media: CallMedia,
        target: str,
        listener: speech.Listener,
        prompt: asyncio.Task[None] | None,
        timeout: float,
        *,
        keys: bool = True,
    ) -> tuple[str, Any]:
        """The next of: ("tone", key) of the target (unless not `keys`), ("speech", None),
        ("heard", Heard | Said | None), ("prompt", None) when the prompt ends,
        ("timeout", None)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", None
            tone: asyncio.Future[tuple[str, str]] = (
                asyncio.ensure_future(media.tones.get())
                if keys
                else asyncio.get_running_loop().create_future()  # keys are not listened for
            )
            heard = asyncio.ensure_future(listener.events.get())
            waiters: set[asyncio.Future[Any]] = {tone, heard}
            if prompt is not None and not prompt.done():
                waiters.add(asyncio.ensure_future(asyncio.shield(prompt)))
            done, pending = await asyncio.wait(
                waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if heard in done:
                if tone in done:  # not lost: the next round takes it
                    media.tones.put_nowait(tone.result())
                kind, value = heard.result()
                return kind, value
            if tone in done:
                raw_id, key = tone.result()
                if raw_id == target:
                    return "tone", key
                continue
            if done and prompt is not None and prompt.done():
                return "prompt", None

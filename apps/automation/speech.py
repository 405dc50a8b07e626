"""Speech recognition of choices, offline (ACS `recognizeInputType: "choices"`): pocketsphinx
(PyPI `pocketsphinx`, whose wheel ships an en-us model) listening for exactly the phrases the
application offers, as a JSGF grammar. Free-form recognition with the shipped language model is
poor; a grammar of a few phrases is good (shared/voice-lab README).

It runs in the media process (apps/automation/media.py); nothing here touches the database:

    participant --(AudioBridge rtp_forward of that leg, Opus)--> ForwardSink (streaming.py:
    16 kHz PCM16) --> pocketsphinx's endpointer (voice activity) --> the decoder, one
    utterance --> the phrase heard, or none

The web process only checks phrases against the model's dictionary (`unknown_words`), which is
read once, lazily (about 0.1 s). Decoders take about 0.1 s to load: they are made in a thread
and kept for reuse. Decoding costs about 1% of one core per listener (measured: 0.1 s of CPU for
11 s of speech).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.automation.streaming import Forward, Room, close_forward, open_forward

logger = logging.getLogger(__name__)

RATE = 16000
POLL_SECONDS = 0.03
MAX_SPEECH_SECONDS = 15.0  # an utterance longer than this is ended and decoded as it is
# Wide beams: with pocketsphinx's defaults, a grammar path of two words ("sales please") was
# pruned away on synthetic speech; these cost little with a grammar this small.
DECODER_OPTIONS: dict[str, Any] = {
    "lm": None,
    "beam": 1e-60,
    "pbeam": 1e-60,
    "wbeam": 1e-40,
    "lpbeam": 1e-40,
    "lponlybeam": 1e-40,
    "loglevel": "FATAL",
}
_WORD = re.compile(r"[a-z']+")
_idle: list[Any] = []  # decoders to reuse (one utterance at a time each)


def normalize(phrase: str) -> str:
    """A phrase as the grammar has it: lower-case words of letters and apostrophes."""
    return " ".join(_WORD.findall(phrase.lower().replace("-", " ")))


@functools.cache
def _dictionary() -> frozenset[str]:
    from pocketsphinx import get_model_path

    words: set[str] = set()
    path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            word = line.split(" ", 1)[0]
            words.add(word.split("(", 1)[0])  # "word(2)" is another pronunciation
    return frozenset(words)


def unknown_words(phrase: str) -> list[str]:
    """The words of `phrase` the recognizer cannot hear (not in its dictionary)."""
    words = normalize(phrase).split()
    known = _dictionary()
    return [word for word in words if word not in known]


@dataclass
class Choice:
    label: str
    phrases: list[str]  # normalized
    tone: str = ""  # a DTMF key ("1", "#"), or none


@dataclass
class Heard:
    label: str
    phrase: str
    confidence: float


def grammar(choices: list[Choice]) -> str:
    """A JSGF grammar of every phrase. Flat alternatives only: pocketsphinx 5 found nothing
    with parenthesized groups or rule references."""
    phrases = sorted({phrase for choice in choices for phrase in choice.phrases if phrase})
    return "#JSGF V1.0;\ngrammar choices;\npublic <choice> = " + " | ".join(phrases) + ";\n"


def match(choices: list[Choice], hypothesis: str) -> tuple[str, str] | None:
    """(label, phrase) of what was heard, or None."""
    heard = normalize(hypothesis)
    for choice in choices:
        if heard in choice.phrases:
            return choice.label, heard
    return None


def _new_decoder() -> Any:
    from pocketsphinx import Decoder

    return Decoder(**DECODER_OPTIONS)


async def _decoder() -> Any:
    return _idle.pop() if _idle else await asyncio.to_thread(_new_decoder)


class Recognizer:
    """One utterance against a grammar, fed 16 kHz PCM16: events "speech" (it began) then
    ("heard", Heard | None) on `events`."""

    def __init__(self, decoder: Any, choices: list[Choice]) -> None:
        from pocketsphinx import Endpointer

        self.decoder = decoder
        self.choices = choices
        self.events: asyncio.Queue[tuple[str, Heard | None]] = asyncio.Queue()
        self.done = False
        self.search = f"choices-{uuid.uuid4().hex[:8]}"
        self._endpointer = Endpointer(sample_rate=RATE)
        self._pending = bytearray()
        self._speech_bytes = 0
        decoder.add_jsgf_string(self.search, grammar(choices))
        decoder.activate_search(self.search)

    def feed(self, pcm: bytes) -> None:
        if self.done:
            return
        self._pending += pcm
        size = self._endpointer.frame_bytes
        while len(self._pending) >= size and not self.done:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        before = self._endpointer.in_speech
        speech = self._endpointer.process(frame)
        if speech is None:
            return
        if not before:
            self.decoder.start_utt()
            self.events.put_nowait(("speech", None))
        self.decoder.process_raw(speech)
        self._speech_bytes += len(speech)
        if not self._endpointer.in_speech or self._speech_bytes > MAX_SPEECH_SECONDS * RATE * 2:
            self.finish()

    def finish(self) -> None:
        """End the utterance (if one began) and report what it matched."""
        if self.done:
            return
        self.done = True
        if not self._speech_bytes:
            return
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        found = match(self.choices, hypothesis.hypstr) if hypothesis is not None else None
        heard = None
        if found is not None:
            confidence = self.decoder.logmath.exp(hypothesis.prob)
            heard = Heard(found[0], found[1], round(min(1.0, max(0.0, confidence)), 3))
        logger.info("heard %r: %s", hypothesis.hypstr if hypothesis else None, heard)
        self.events.put_nowait(("heard", heard))

    def release(self) -> None:
        """Give the decoder back for reuse."""
        if not self.done:
            self.done = True
            with contextlib.suppress(Exception):
                self.decoder.end_utt()
        with contextlib.suppress(Exception):
            self.decoder.remove_search(self.search)
        _idle.append(self.decoder)


class ChoiceListener:
    """Listen to one participant of the room for one of `choices`: open() forwards its audio
    here and starts recognizing; `events` as Recognizer's; close() undoes it all."""

    def __init__(self, room: Room, display: str, choices: list[Choice]) -> None:
        self.room = room
        self.display = display
        self.choices = [choice for choice in choices if choice.phrases]
        self.recognizer: Recognizer | None = None
        self.events: asyncio.Queue[tuple[str, Heard | None]] = asyncio.Queue()
        self._forward: Forward | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Raises JanusError (the leg is gone, or four are forwarded apart already)."""
        if not self.choices:
            return  # tones only
        self.recognizer = Recognizer(await _decoder(), self.choices)
        self.events = self.recognizer.events
        self._forward = await open_forward(self.room, self.display, rate=RATE, max_seconds=5.0)
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        assert self._forward is not None and self.recognizer is not None
        while not self.recognizer.done:
            await asyncio.sleep(POLL_SECONDS)
            audio = self._forward.sink.take_all()
            if audio:
                self.recognizer.feed(audio)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._forward is not None:
            await close_forward(self.room, self._forward)
            self._forward = None
        if self.recognizer is not None:
            self.recognizer.release()
            self.recognizer = None

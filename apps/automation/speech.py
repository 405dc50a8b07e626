"""Speech recognition, offline, with pocketsphinx (PyPI `pocketsphinx`, whose wheel ships an
en-us acoustic model, dictionary and language model):

- choices (ACS `recognizeInputType: "choices"`): listening for exactly the phrases the
  application offers, as a JSGF grammar. Good (shared/voice-lab README).
- free speech (`"speech"`, `"speechOrDtmf"`): the shipped general English language model.
  Poor, and very dependent on the voice: measured on espeak-ng voices through Opus, 43% of
  words wrong for `en-us+f2`, 92% for the default voice (docs/automation.md has the table).
  pocketsphinx's default beams and language weight did best; wider beams, other weights, CMN
  modes and dither did not help, narrower beams hurt.

It runs in the media process (apps/automation/media.py); nothing here touches the database:

    participant --(AudioBridge rtp_forward of that leg, Opus)--> ForwardSink (streaming.py:
    16 kHz PCM16) --> pocketsphinx's endpointer (voice activity) --> the decoder, one
    utterance --> the phrase heard, or none

The web process only checks phrases against the model's dictionary (`unknown_words`), which is
read once, lazily (about 0.1 s). Decoders are made in a thread and kept for reuse: a grammar
decoder takes about 0.3 s to load, a language-model one about 0.7 s and 100 MB. Decoding a
grammar costs about 1% of one core per listener (0.1 s of CPU for 11 s of speech); free speech
about a third of one core while the participant speaks (12 s of CPU for 34 s of speech).

An utterance ends when the endpointer hears no speech for its window (0.3 s) and then, for free
speech, for the rest of the application's `endSilenceTimeoutInMs`: a pause shorter than that
continues the same utterance.
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
MAX_SPEECH_SECONDS = 15.0  # an utterance longer than this (pauses included) is ended and decoded
# Wide beams: with pocketsphinx's defaults, a grammar path of two words ("sales please") was
# pruned away on synthetic speech; these cost little with a grammar this small.
GRAMMAR_OPTIONS: dict[str, Any] = {
    "lm": None,
    "beam": 1e-60,
    "pbeam": 1e-60,
    "wbeam": 1e-40,
    "lpbeam": 1e-40,
    "lponlybeam": 1e-40,
    "loglevel": "FATAL",
}
# Free speech: the shipped language model with pocketsphinx's own beams and weights (the best of
# those measured, see above).
LANGUAGE_MODEL_OPTIONS: dict[str, Any] = {"loglevel": "FATAL"}
ENDPOINTER_WINDOW = 0.3  # seconds: pocketsphinx's default
DEFAULT_END_SILENCE = 0.5  # seconds, when the application gives no endSilenceTimeoutInMs
_WORD = re.compile(r"[a-z']+")
_FILLER = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")
_idle: dict[bool, list[Any]] = {True: [], False: []}  # by "has a grammar": decoders to reuse
_warm: set[int] = set()  # ids of language-model decoders whose cepstral mean was set from speech


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
    """A choice said."""

    label: str
    phrase: str
    confidence: float


@dataclass
class Said:
    """Free speech: the words recognized ("" when speech was heard but no word recognized) and
    the per-word geometric mean of the hypothesis' posterior probability, when known."""

    text: str
    confidence: float | None


Event = tuple[str, Heard | Said | None]


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


def words(hypothesis: str) -> str:
    """A language-model hypothesis as text: words without fillers or alternate-pronunciation
    marks ("a(2)")."""
    kept = [word.split("(", 1)[0] for word in hypothesis.split() if not _FILLER.match(word)]
    return " ".join(kept)


def _new_decoder(grammar: bool) -> Any:
    from pocketsphinx import Decoder

    return Decoder(**(GRAMMAR_OPTIONS if grammar else LANGUAGE_MODEL_OPTIONS))


async def _decoder(grammar: bool) -> Any:
    idle = _idle[grammar]
    return idle.pop() if idle else await asyncio.to_thread(_new_decoder, grammar)


class Recognizer:
    """One utterance, fed 16 kHz PCM16: events "speech" (it began) then ("heard", Heard | None)
    against the choices' grammar, or ("heard", Said | None) for free speech (choices None), on
    `events`. `end_silence`: seconds of silence that end free speech."""

    def __init__(
        self,
        decoder: Any,
        choices: list[Choice] | None,
        end_silence: float = DEFAULT_END_SILENCE,
    ) -> None:
        from pocketsphinx import Endpointer

        self.decoder = decoder
        self.choices = choices
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.done = False
        self.search = f"choices-{uuid.uuid4().hex[:8]}" if choices is not None else ""
        self._endpointer = Endpointer(window=ENDPOINTER_WINDOW, sample_rate=RATE)
        # The endpointer itself ends speech after about its window of silence; the rest of the
        # end silence is counted here (choices end with the endpointer).
        self._more_silence = 0.0 if choices is not None else end_silence - ENDPOINTER_WINDOW
        self._silence = 0.0  # seconds heard since the endpointer ended speech
        self._pending = bytearray()
        self._speech_bytes = 0
        self._utterance = bytearray()  # what was decoded, for a new decoder's second pass
        self._seconds = 0.0  # of the utterance, pauses included
        if choices is not None:
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
            if self._speech_bytes and not self._endpointer.in_speech:
                self._silence += self._endpointer.frame_length
                self._seconds += self._endpointer.frame_length
                if self._silence >= self._more_silence or self._seconds > MAX_SPEECH_SECONDS:
                    self.finish()
            return
        if not before and not self._speech_bytes:
            self.decoder.start_utt()
            self.events.put_nowait(("speech", None))
        self.decoder.process_raw(speech)
        if self.choices is None and id(self.decoder) not in _warm:
            self._utterance += speech
        self._speech_bytes += len(speech)
        self._seconds += len(speech) / (RATE * 2)
        self._silence = 0.0
        if self._seconds > MAX_SPEECH_SECONDS:
            self.finish()
        elif not self._endpointer.in_speech and self._more_silence <= 0:
            self.finish()

    def finish(self) -> None:
        """End the utterance (if one began) and report what it matched."""
        if self.done:
            return
        self.done = True
        if not self._speech_bytes:
            return
        self.decoder.end_utt()
        if self._utterance:
            self._second_pass()
        hypothesis = self.decoder.hyp()
        heard: Heard | Said | None = None
        if self.choices is None:
            text = words(hypothesis.hypstr) if hypothesis is not None else ""
            heard = Said(text, _confidence(hypothesis, text))
        else:
            found = match(self.choices, hypothesis.hypstr) if hypothesis is not None else None
            if found is not None:
                heard = Heard(found[0], found[1], _confidence(hypothesis, found[1]) or 0.0)
        logger.info("heard %r: %s", hypothesis.hypstr if hypothesis else None, heard)
        self.events.put_nowait(("heard", heard))

    def _second_pass(self) -> None:
        """A new decoder starts from pocketsphinx's built-in cepstral mean, far from that of
        the audio that reaches it (measured "40,3,-1,0,..." against "45,4,-1,6,-10,...") and it
        misheard most words of its first utterance. So its first utterance is decoded again
        from the mean of that utterance; later ones start from the mean it has learnt (live
        CMN). Once per decoder: about a third of the utterance's length in CPU."""
        self.decoder.set_cmn(self.decoder.get_cmn(True))
        self.decoder.start_utt()
        self.decoder.process_raw(bytes(self._utterance), full_utt=True)
        self.decoder.end_utt()
        self._utterance.clear()
        _warm.add(id(self.decoder))

    def release(self) -> None:
        """Give the decoder back for reuse."""
        if not self.done:
            self.done = True
            with contextlib.suppress(Exception):
                self.decoder.end_utt()
        if self.search:
            with contextlib.suppress(Exception):
                self.decoder.remove_search(self.search)
        _idle[self.choices is not None].append(self.decoder)


def _confidence(hypothesis: Any, text: str) -> float | None:
    """pocketsphinx's posterior probability of the whole hypothesis (`prob`, already a
    probability), as a per-word geometric mean so that long sentences are not penalized."""
    count = len(text.split())
    if hypothesis is None or not count or not 0 < hypothesis.prob <= 1:
        return None
    return round(min(1.0, hypothesis.prob ** (1 / count)), 3)


class Listener:
    """Listen to one participant of the room, for one of `choices` or (choices None) for free
    speech: open() forwards its audio here and starts recognizing; `events` as Recognizer's;
    close() undoes it all."""

    def __init__(
        self,
        room: Room,
        display: str,
        choices: list[Choice] | None,
        *,
        end_silence: float = DEFAULT_END_SILENCE,
    ) -> None:
        self.room = room
        self.display = display
        self.choices = (
            [choice for choice in choices if choice.phrases] if choices is not None else None
        )
        self.end_silence = end_silence
        self.recognizer: Recognizer | None = None
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._forward: Forward | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Raises JanusError (the leg is gone, or four are forwarded apart already)."""
        if self.choices == []:
            return  # tones only
        decoder = await _decoder(self.choices is not None)
        self.recognizer = Recognizer(decoder, self.choices, self.end_silence)
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

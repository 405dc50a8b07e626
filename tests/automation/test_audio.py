"""apps.automation.audio with the real espeak-ng and ffmpeg: prompts as Ogg Opus for Janus
AudioBridge, cached by content, and recordings joined."""

from __future__ import annotations

import array
import math
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from apps.automation import audio
from tests.automation.tones import decode, read_wav, require_tool, rms, tone_energy


@pytest.fixture(autouse=True)
def media_cache(settings: Any, tmp_path: Path) -> Path:
    require_tool("ffmpeg")
    settings.DATA_DIR = tmp_path
    return tmp_path / "media-cache"


def make_audio(tmp_path: Path, name: str, source: str, *options: str) -> Path:
    """A file made by ffmpeg from a lavfi source (the tests' own WAV and MP3 files)."""
    path = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", source]
        + [*options, str(path)],
        check=True,
        timeout=30,
    )
    return path


def janus_wav(path: Path, frequency: float, seconds: float = 1.0) -> Path:
    """A canonical 44-byte-header WAV, 16 kHz mono, like AudioBridge's recordings."""
    rate = 16000
    samples = array.array(
        "h",
        (
            int(8000 * math.sin(2 * math.pi * frequency * n / rate))
            for n in range(int(seconds * rate))
        ),
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def assert_ogg_opus_mono_48k(path: Path) -> float:
    data = path.read_bytes()
    head = data.find(b"OpusHead")
    assert data[:4] == b"OggS" and head > 0
    assert data[head + 9] == 1  # channels
    assert int.from_bytes(data[head + 12 : head + 16], "little") == 48000
    return audio.ogg_opus_seconds(data)


def forbid_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a subprocess ran")

    monkeypatch.setattr(audio.subprocess, "run", refuse)


def test_speech_is_ogg_opus_of_plausible_length_and_cached(
    media_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given espeak-ng
    require_tool("espeak-ng")
    text = "Thank you for calling. Press one for sales, or two for support."

    # when a text is spoken
    path = audio.speech_file(text, voice="en-US-JennyNeural")

    # then it is mono 48 kHz Ogg Opus, as long as the words take, and not silent
    seconds = assert_ogg_opus_mono_48k(path)
    assert 2.5 < seconds < 8
    samples = decode(path)
    assert rms(samples) > 300
    assert path.parent == media_cache and media_cache.stat().st_mode & 0o777 == 0o700

    # and asking again (even with other whitespace) runs nothing and gives the same file
    forbid_subprocesses(monkeypatch)
    assert audio.speech_file(f"  {text}\n", voice="en-US-JennyNeural") == path
    monkeypatch.undo()
    # while another voice is another file
    assert audio.speech_file(text, voice="en-GB-RyanNeural") != path
    assert not list(media_cache.glob("*.tmp"))


def test_concurrent_callers_get_one_whole_file() -> None:
    # given espeak-ng
    require_tool("espeak-ng")

    # when four threads ask for the same new prompt at once
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: audio.speech_file("One moment please."), range(4)))

    # then they all get the same complete file
    assert len(set(paths)) == 1
    assert assert_ogg_opus_mono_48k(paths[0]) > 0.5


@pytest.mark.parametrize(
    ("voice", "locale", "expected"),
    [
        ("en-US-JennyNeural", "", "en-us+f3"),
        ("en-GB-RyanNeural", "", "en-gb"),
        ("es-ES-ElviraNeural", "", "es+f3"),
        ("es-MX-JorgeNeural", "", "es-419"),
        ("fr-FR-DeniseNeural", "", "fr-fr+f3"),
        ("de-DE-KatjaNeural", "en-US", "de+f3"),  # the voice's own locale wins
        ("en-US-AndrewMultilingualNeural", "", "en-us"),
        ("", "en-GB", "en-gb"),
        ("", "pt-BR", "pt-br"),
        ("", "de-AT", "de"),  # no such voice: its language's
        ("", "xx-YY", "en-us"),  # unknown: en-us
        ("Nonsense Voice!", "", "en-us"),
    ],
)
def test_acs_voices_and_locales_map_to_espeak_voices(
    voice: str, locale: str, expected: str
) -> None:
    require_tool("espeak-ng")
    assert audio.espeak_voice_for(voice, locale) == expected


@pytest.mark.parametrize("text", ["", "   \n ", "x" * (audio.MAX_TEXT_LENGTH + 1)])
def test_empty_or_too_long_text_is_refused(text: str) -> None:
    with pytest.raises(audio.AudioError):
        audio.speech_file(text)


def test_ssml_becomes_plain_text_and_entities_are_refused() -> None:
    # given SSML as ACS takes it
    ssml = (
        '<speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en-US">'
        '<voice name="en-US-JennyNeural">Hello<break time="500ms"/>there. '
        'Visit <sub alias="World Wide Web">WWW</sub> &amp; more.</voice></speak>'
    )

    # then its words remain
    assert audio.ssml_text(ssml) == "Hello there. Visit World Wide Web & more."

    # and a DTD (entity expansion, external entities) or broken XML is refused
    for bad in (
        '<!DOCTYPE s [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><speak>&b;</speak>',
        '<!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>',
        "<speak>&undefined;</speak>",
        "<speak>unclosed",
    ):
        with pytest.raises(audio.AudioError):
            audio.ssml_text(bad)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("prompt.wav", ("-ar", "8000", "-ac", "1")),
        ("prompt.mp3", ("-ar", "44100", "-ac", "2", "-c:a", "libmp3lame")),
    ],
)
def test_wav_and_mp3_files_become_ogg_opus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, options: tuple[str, ...]
) -> None:
    # given a tenant's file holding 1.5 s of 500 Hz
    data = make_audio(tmp_path, name, "sine=frequency=500:duration=1.5", *options).read_bytes()

    # when it is made a prompt
    path = audio.prompt_file(data)

    # then it is that tone as mono 48 kHz Ogg Opus
    assert 1.4 < assert_ogg_opus_mono_48k(path) < 1.7
    samples = decode(path)
    assert tone_energy(samples, 16000, 500) > 1000
    # and the same bytes again come from the cache
    forbid_subprocesses(monkeypatch)
    assert audio.prompt_file(data) == path


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01garbage" * 100,
        b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n",  # HLS: would read another file
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",  # concat demuxer, likewise
        b"ID3\x03\x00\x00\x00\x00\x00\x00#EXTM3U\nfile:///etc/passwd\n",  # an MP3 in name only
        b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\xff" * 64,  # a WAV header, then nonsense
    ],
)
def test_files_that_are_not_audio_are_refused(data: bytes) -> None:
    with pytest.raises(audio.AudioError):
        audio.prompt_file(data)


def test_audio_longer_than_the_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a cap of 2 s and a 4 s file
    monkeypatch.setattr(audio, "MAX_PROMPT_SECONDS", 2.0)
    data = make_audio(tmp_path, "long.wav", "sine=frequency=400:duration=4").read_bytes()

    # then it is refused, and nothing is cached
    with pytest.raises(audio.AudioError, match="longer than"):
        audio.prompt_file(data)
    assert not list((tmp_path / "media-cache").glob("prompt-*"))


def test_dtmf_is_the_two_frequencies_of_each_key() -> None:
    # when "5" and "#" are made into tones
    five = decode(audio.dtmf_file("5"), 8000)
    pound = decode(audio.dtmf_file("#"), 8000)

    # then "5" holds 770 + 1336 Hz (row 2, column 2), and "#" 941 + 1477 Hz
    assert tone_energy(five, 8000, 770) > 3000 and tone_energy(five, 8000, 1336) > 3000
    for other in (697, 852, 941, 1209, 1477):
        assert tone_energy(five, 8000, other) < 800
    assert tone_energy(pound, 8000, 941) > 3000 and tone_energy(pound, 8000, 1477) > 3000
    # and each key is 100 ms plus 60 ms gaps
    assert audio.ogg_opus_seconds(audio.dtmf_file("123").read_bytes()) == pytest.approx(
        0.06 + 3 * 0.16, abs=0.03
    )
    with pytest.raises(audio.AudioError):
        audio.dtmf_file("5X")


def test_a_tone_file_holds_its_frequency() -> None:
    path = audio.tone_file(1000, 0.5)
    assert assert_ogg_opus_mono_48k(path) == pytest.approx(0.5, abs=0.03)
    assert tone_energy(decode(path), 16000, 1000) > 2000


@pytest.mark.parametrize("audio_format", ["wav", "mp3"])
def test_recording_segments_join_into_one_file(tmp_path: Path, audio_format: str) -> None:
    # given two 16 kHz mono segments as Janus writes them, the second with the sizes in its
    # header not written yet (as when Janus stops without closing it)
    first, second = janus_wav(tmp_path / "a.wav", 440), janus_wav(tmp_path / "b.wav", 880)
    data = bytearray(second.read_bytes())
    assert data[36:40] == b"data"
    data[4:8] = data[40:44] = bytes(4)
    second.write_bytes(bytes(data))

    # when they are joined
    out = tmp_path / f"recording.{audio_format}"
    audio.join_recording([first, second], out, audio_format)

    # then the file holds the first, then the second, mono
    if audio_format == "wav":
        samples, rate = read_wav(out)
        raw = out.read_bytes()  # with its sizes written (a pipe would have left them unset)
        assert rate == 16000 and int.from_bytes(raw[4:8], "little") == len(raw) - 8
    else:
        samples, rate = decode(out), 16000
    assert 1.9 < len(samples) / rate < 2.2
    start, end = samples[: rate // 2], samples[-rate // 2 :]
    assert tone_energy(start, rate, 440) > 1000 and tone_energy(start, rate, 880) < 300
    assert tone_energy(end, rate, 880) > 1000 and tone_energy(end, rate, 440) < 300
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(audio.AudioError):
        audio.join_recording([first], out, "ogg")

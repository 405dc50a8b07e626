"""Helpers for audio tests: find a tone in samples (Goertzel), read WAV and decode any audio to
PCM with ffmpeg, and skip (or, with SPOOL_REQUIRE_TOOLS=1, fail) when a tool is missing."""

from __future__ import annotations

import array
import math
import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Sequence
from pathlib import Path


def require_tool(name: str) -> None:
    """Skip the test when `name` is not on PATH; fail instead under SPOOL_REQUIRE_TOOLS=1 (CI
    installs the tools, so a skip there would hide a failure)."""
    import pytest

    if shutil.which(name) is None:
        message = f"{name} not installed: apt-get install {name}"
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def tone_energy(samples: Sequence[int], rate: int, frequency: float) -> float:
    """The amplitude (in sample units) of `frequency` in `samples`, by a Hann-windowed
    Goertzel filter: a sine of amplitude A at that frequency gives about A, silence 0."""
    n = len(samples)
    if n == 0:
        return 0.0
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    before = before_that = 0.0
    window_sum = 0.0
    for i, sample in enumerate(samples):
        weight = 0.5 - 0.5 * math.cos(2 * math.pi * i / n)
        window_sum += weight
        before, before_that = sample * weight + coefficient * before - before_that, before
    power = before * before + before_that * before_that - coefficient * before * before_that
    return 2 * math.sqrt(max(power, 0.0)) / window_sum


def rms(samples: Sequence[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def pcm_samples(data: bytes) -> array.array[int]:
    samples = array.array("h")
    samples.frombytes(data[: len(data) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def read_wav(path: Path) -> tuple[array.array[int], int]:
    """Mono 16-bit samples (the first channel) and the rate of a WAV file."""
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2, "16-bit WAV expected"
        channels, rate = wav.getnchannels(), wav.getframerate()
        samples = pcm_samples(wav.readframes(wav.getnframes()))
    return (samples[::channels] if channels > 1 else samples), rate


def decode(path: Path, rate: int = 16000) -> array.array[int]:
    """Any audio file ffmpeg reads, as mono 16-bit samples at `rate`."""
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(path)]
        + ["-ac", "1", "-ar", str(rate), "-f", "s16le", "pipe:1"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return pcm_samples(done.stdout)


# G.711 A-law (ITU-T G.711, as in the reference g711.c) for plain-RTP legs and forwards.
_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def alaw_encode(samples: Sequence[int]) -> bytes:
    out = bytearray()
    for sample in samples:
        value = sample >> 3
        mask = 0xD5 if value >= 0 else 0x55
        if value < 0:
            value = -value - 1
        segment = next((i for i, end in enumerate(_ALAW_SEGMENT_ENDS) if value <= end), 8)
        if segment >= 8:
            out.append(0x7F ^ mask)
            continue
        shift = 1 if segment < 2 else segment
        out.append(((segment << 4) | ((value >> shift) & 0x0F)) ^ mask)
    return bytes(out)


def _alaw_decode_one(code: int) -> int:
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


_ALAW_TABLE = tuple(_alaw_decode_one(code) for code in range(256))


def alaw_decode(data: bytes) -> list[int]:
    return [_ALAW_TABLE[code] for code in data]


def channel_of(path: Path, channel: int, rate: int = 16000) -> array.array[int]:
    """One channel of a multichannel audio file (an unmixed recording), as 16-bit samples."""
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(path)]
        + ["-af", f"pan=mono|c0=c{channel}", "-ar", str(rate), "-f", "s16le", "pipe:1"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return pcm_samples(done.stdout)


def channel_count(path: Path) -> int:
    """How many channels a WAV file has (its fmt chunk, WAVE_FORMAT_EXTENSIBLE too)."""
    data = path.read_bytes()[:64]
    at = data.find(b"fmt ")
    return int.from_bytes(data[at + 10 : at + 12], "little")

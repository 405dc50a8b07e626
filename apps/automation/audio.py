"""Offline audio for Call Automation: speech, tenant files, DTMF and tones as the Ogg Opus files
that Janus AudioBridge's `play_file` plays, and recording segments joined into one file.

    path = speech_file("Press one for sales.", voice="en-US-JennyNeural")
    path = prompt_file(wav_or_mp3_bytes)          # bytes fetched through apps/core/outbound
    path = dtmf_file("12#")
    join_recording([part0, part1], out, "mp3")
    join_unmixed_recording([Stretch(start, end, [Track(0, leg.mjr), ...]), ...], out, 2)

The tools are espeak-ng (speech), janus-pp-rec (Janus's .mjr recordings of single legs) and
ffmpeg (everything else), run as subprocesses with timeouts, never through a shell. Every prompt is cached under DATA_DIR/media-cache, named by a
hash of what made it, and written atomically (a temporary file renamed into place), so callers
in several processes may ask for the same prompt at once. The functions block: async callers
run them in a thread (asyncio.to_thread).

Bad input raises AudioError (a ValueError) with a message fit for a log; a missing tool raises
RuntimeError (a deployment fault, not the caller's).
"""

from __future__ import annotations

import array
import functools
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.parsers.expat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

SAMPLE_RATE = 48000  # Opus' own rate; AudioBridge resamples to the room's
OPUS_BITRATE = "32k"  # plenty for mono speech and tones
MAX_TEXT_LENGTH = 4000  # characters of speech (ACS allows 4,000 for a text source)
MAX_PROMPT_SECONDS = 600.0  # a tenant's file longer than this is refused
MAX_TONES = 100
MAX_TONE_SECONDS = 600.0
SPEECH_TIMEOUT = 60.0  # seconds for espeak-ng to speak MAX_TEXT_LENGTH characters
CONVERT_TIMEOUT = 120.0  # seconds for any one ffmpeg run
RECORDING_TIMEOUT = 600.0  # seconds to make an unmixed recording (hours of several channels)
RECORDING_RATE = 16000  # the AudioBridge mix's rate: unmixed channels line up with it
# A WAV of more than two channels names a speaker per channel: layouts without an LFE (which
# players would low-pass), so every participant's channel plays as it is.
UNMIXED_LAYOUTS = {2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0"}
# Bump when the way a prompt is made changes, so cached files made the old way are not used.
CACHE_VERSION = "1"

# DTMF (ITU-T Q.23): a row frequency plus a column frequency per key.
DTMF_FREQUENCIES = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip
DTMF_TONE_SECONDS = 0.1
DTMF_GAP_SECONDS = 0.06
DTMF_AMPLITUDE = 0.35  # of full scale, per frequency: the sum stays below clipping

# ACS neural voices are "<locale>-<Name>Neural"; espeak-ng has one voice per language, so the
# name only picks a female or male variant. Names not listed here speak with the male voice.
FEMALE_VOICE_NAMES = frozenset(
    """Jenny Aria Ava Emma Michelle Monica Sara Ashley Cora Elizabeth Jane Nancy Amber Ana
    Libby Sonia Maisie Abbi Bella Hollie Olivia Natasha Clara Neerja Emily Elvira Abril
    Estrella Irene Laia Lia Triana Vera Dalia Beatriz Candela Carlota Larissa Marina Nuria
    Renata Denise Brigitte Celeste Coralie Eloise Jacqueline Josephine Yvette Sylvie Ariane
    Katja Amala Elke Gisela Klarissa Louisa Maja Tanja Seraphina Isabella Elsa Fiamma
    Francisca Raquel Fernanda Giovanna Leila Thalita Yara Colette Fenna Hanna Iselin Pernille
    Sofie Agnieszka Zofia Nanami Aoi Mayu Shiori Xiaoxiao Xiaoyi Xiaohan HiuMaan HsiaoChen
    SunHi Svetlana Dariya Alena""".split()
)
FEMALE_VARIANT = "+f3"
DEFAULT_VOICE = "en-us"
# Locales and languages whose espeak-ng voice has another name (the rest match by name).
VOICE_ALIASES = {
    "zh": "cmn",
    "zh-cn": "cmn",
    "zh-tw": "cmn",
    "zh-hk": "yue",
    "no": "nb",
    "en-au": "en-gb",
    "en-ie": "en-gb",
    "en-in": "en-gb",
    "en-nz": "en-gb",
    "en-za": "en-gb",
    "en-ca": "en-us",
    "pt-pt": "pt",
}
LATIN_AMERICAN_SPANISH = "es-419"


class AudioError(ValueError):
    """The input cannot be made into audio: empty or too long text, a file that is not audio
    ffmpeg decodes, or audio longer than allowed."""


# --- speech ----------------------------------------------------------------------------------
def speech_file(text: str, *, voice: str = "", locale: str = "") -> Path:
    """`text` spoken by espeak-ng in the voice closest to ACS `voice` (or `locale`), as Ogg
    Opus. Raises AudioError for empty text or text over MAX_TEXT_LENGTH characters."""
    text = " ".join(text.split())  # newlines and runs of spaces say nothing to espeak-ng
    if not text:
        raise AudioError("There is no text to speak.")
    if len(text) > MAX_TEXT_LENGTH:
        raise AudioError(f"The text is longer than {MAX_TEXT_LENGTH} characters.")
    espeak_voice = espeak_voice_for(voice, locale)
    path = _cache_path("speech", {"text": text, "voice": espeak_voice})
    if _cached(path):
        return path
    # The text goes in on stdin (--stdin), so nothing in it can be read as an option.
    wav = _run(
        [_tool("espeak-ng"), "-v", espeak_voice, "--stdin", "--stdout"],
        text.encode(),
        timeout=SPEECH_TIMEOUT,
        what="speaking the text",
    )
    _write_atomically(path, _to_opus(wav, input_format="wav"))
    return path


def espeak_voice_for(voice: str = "", locale: str = "") -> str:
    """The espeak-ng voice for an ACS voice name ("en-GB-RyanNeural") or a locale ("en-GB"):
    the locale's voice, else its language's, else en-us; "+f3" for female voice names."""
    name = ""
    match = re.fullmatch(
        r"([A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,4})?)-([A-Za-z]+?)(?:Multilingual)?(?:Neural)?", voice
    )
    if match:  # the voice's own locale wins, as in ACS
        locale, name = match.group(1), match.group(2)
    if not locale and re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,4})?", voice):
        locale = voice  # a bare locale given as the voice
    base = _espeak_language(locale.lower()) if locale else DEFAULT_VOICE
    return base + FEMALE_VARIANT if name in FEMALE_VOICE_NAMES else base


def _espeak_language(locale: str) -> str:
    installed = _installed_voices()
    language = locale.split("-")[0]
    candidates = [VOICE_ALIASES.get(locale, locale), VOICE_ALIASES.get(language, language)]
    if language == "es" and locale not in ("es", "es-es"):
        candidates.insert(1, LATIN_AMERICAN_SPANISH)
    for candidate in candidates:
        if candidate in installed:
            return candidate
    return DEFAULT_VOICE


@functools.lru_cache(maxsize=1)
def _installed_voices() -> frozenset[str]:
    """Language names of espeak-ng's voices ("en-us", "fr-fr", "de", ...)."""
    listing = _run(
        [_tool("espeak-ng"), "--voices"], b"", timeout=SPEECH_TIMEOUT, what="listing voices"
    )
    rows = listing.decode(errors="replace").splitlines()[1:]  # under a header row
    return frozenset(row.split()[1] for row in rows if len(row.split()) > 1)


def ssml_text(ssml: str) -> str:
    """The words of an SSML document (tags dropped; `<sub alias>` says its alias). Raises
    AudioError for text that is not well-formed XML or that declares a DTD or entities."""
    # expat straight away (xml.etree sits on it): a DOCTYPE is refused before any entity can
    # be declared, so there is nothing to expand (billion laughs) or fetch (external entities).
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    words: list[str] = []
    aliases: list[bool] = []  # one per open element: inside a <sub alias>, skip the text

    def refuse(*args: Any) -> int:
        raise AudioError("SSML must not declare a DTD or entities.")

    def start(name: str, attributes: dict[str, str]) -> None:
        alias = name.rsplit(":", 1)[-1] == "sub" and "alias" in attributes
        if alias:
            words.append(f" {attributes['alias']} ")
        aliases.append(alias or bool(aliases and aliases[-1]))
        words.append(" ")  # <break/>, <s>, <p>: a word boundary at least

    def end(name: str) -> None:
        aliases.pop()
        words.append(" ")

    def text(data: str) -> None:
        if not (aliases and aliases[-1]):
            words.append(data)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(ssml, True)
    except xml.parsers.expat.ExpatError as error:
        raise AudioError(f"The SSML is not well-formed XML: {error}.") from error
    return " ".join("".join(words).split())


# --- tenants' files ---------------------------------------------------------------------------
def prompt_file(data: bytes) -> Path:
    """A tenant's audio file (WAV, MP3, Ogg or FLAC, told apart by content) as Ogg Opus.
    Raises AudioError for anything else, audio ffmpeg cannot decode, or audio longer than
    MAX_PROMPT_SECONDS."""
    input_format = detect_format(data)
    if input_format is None:
        raise AudioError("The file is not WAV, MP3, Ogg or FLAC audio.")
    path = _cache_path("prompt", {"sha256": hashlib.sha256(data).hexdigest()})
    if _cached(path):
        return path
    # A little past the cap, so an over-long file shows up as over-long and no more is decoded.
    opus = _to_opus(data, input_format=input_format, limit=MAX_PROMPT_SECONDS + 1)
    seconds = ogg_opus_seconds(opus)
    if seconds <= 0:
        raise AudioError("The file holds no audio.")
    if seconds > MAX_PROMPT_SECONDS:
        raise AudioError(f"The audio is longer than {MAX_PROMPT_SECONDS / 60:g} minutes.")
    _write_atomically(path, opus)
    return path


def detect_format(data: bytes) -> str | None:
    """ffmpeg's demuxer for `data` by its first bytes, or None if it is none we take. By
    content: a name or a Content-Type says nothing about what ffmpeg would parse."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"  # an ID3 tag, or an MPEG audio frame sync
    return None


# --- tones -----------------------------------------------------------------------------------
def dtmf_file(tones: str) -> Path:
    """DTMF keys ("0"-"9", "*", "#", "A"-"D") as in-band dual-frequency tones, 100 ms each
    with 60 ms between them, as Ogg Opus. Raises AudioError for other keys."""
    tones = tones.upper()
    if not tones or len(tones) > MAX_TONES or any(t not in DTMF_FREQUENCIES for t in tones):
        raise AudioError(f"Tones must be 1 to {MAX_TONES} of 0-9, *, #, A-D.")
    path = _cache_path("dtmf", {"tones": tones})
    if _cached(path):
        return path
    gap = bytes(2 * round(DTMF_GAP_SECONDS * SAMPLE_RATE))
    pcm = gap + b"".join(_dtmf_pcm(tone) + gap for tone in tones)
    _write_atomically(path, _to_opus(pcm, input_format="s16le"))
    return path


@functools.lru_cache(maxsize=len(DTMF_FREQUENCIES))
def _dtmf_pcm(tone: str) -> bytes:
    """One key's 100 ms of 16-bit PCM at SAMPLE_RATE."""
    low, high = (2 * math.pi * f / SAMPLE_RATE for f in DTMF_FREQUENCIES[tone])
    scale = DTMF_AMPLITUDE * 32767
    count = round(DTMF_TONE_SECONDS * SAMPLE_RATE)
    samples = array.array(
        "h", [round(scale * (math.sin(low * n) + math.sin(high * n))) for n in range(count)]
    )
    if sys.byteorder == "big":  # ffmpeg reads s16le
        samples.byteswap()
    return samples.tobytes()


def tone_file(frequency: float, seconds: float) -> Path:
    """A sine tone (at 1/8 of full scale) as Ogg Opus: a test signal, a beep for prompts."""
    if not 20 <= frequency <= 20000 or not 0 < seconds <= MAX_TONE_SECONDS:
        raise AudioError("A tone is 20 Hz to 20 kHz and at most 10 minutes long.")
    path = _cache_path("tone", {"frequency": frequency, "seconds": seconds})
    if _cached(path):
        return path
    source = f"sine=frequency={frequency:g}:sample_rate={SAMPLE_RATE}:duration={seconds:g}"
    _write_atomically(path, _to_opus(b"", input_format="lavfi", source=source))
    return path


# --- recordings ------------------------------------------------------------------------------
def join_recording(segments: list[Path], out: Path, audio_format: str) -> None:
    """Join the WAV segments of one recording (paused and resumed) into `out`, as "wav"
    (16-bit PCM) or "mp3", mono at the segments' rate; written atomically. Raises AudioError
    for another format, no segments, or segments ffmpeg cannot read."""
    if audio_format not in ("wav", "mp3"):
        raise AudioError(f"Recordings are wav or mp3, not {audio_format!r}.")
    if not segments:
        raise AudioError("There are no segments to join.")
    inputs: list[str] = []
    for segment in segments:
        # Janus writes the WAV sizes only every few seconds and on close: read to the end.
        inputs += ["-ignore_length", "1", "-f", "wav", "-i", str(segment)]
    streams = "".join(f"[{i}:a]" for i in range(len(segments)))
    codec = ["-c:a", "pcm_s16le"] if audio_format == "wav" else ["-c:a", "libmp3lame", "-q:a", "4"]
    # To a file, not a pipe: the WAV sizes and the MP3 length header are written at the end,
    # seeking back. A temporary name, so the recording appears whole or not at all.
    descriptor, temporary = tempfile.mkstemp(dir=out.parent, prefix=".", suffix=".tmp")
    os.close(descriptor)
    try:
        _run(
            [
                _tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin",
                *inputs,
                "-filter_complex", f"{streams}concat=n={len(segments)}:v=0:a=1[out]",
                "-map", "[out]", "-ac", "1", *codec,
                "-map_metadata", "-1", "-bitexact",  # a plain 44-byte WAV header
                "-f", audio_format, "-y", temporary,
            ],
            None,
            timeout=CONVERT_TIMEOUT,
            what="joining the recording",
            output=False,
        )  # fmt: skip
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Track:
    """One leg's own audio in one active stretch of an unmixed recording: a Janus .mjr."""

    channel: int
    mjr: Path


@dataclass(frozen=True)
class Stretch:
    """An active stretch of an unmixed recording (from a start or resume to a pause or stop),
    in epoch microseconds; `end` None when the media process died meanwhile (the tracks' last
    writes end it then)."""

    start: int
    end: int | None
    tracks: list[Track]


def mjr_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a Janus recording (.mjr): "c" the codec, "u" when its first packet
    was written (epoch µs). None when Janus wrote no packet (a leg muted throughout)."""
    try:
        with path.open("rb") as file:
            head = file.read(10)
            if len(head) < 10 or not head.startswith(b"MJR0000"):
                return None
            size = int.from_bytes(head[8:10], "big")
            header = json.loads(file.read(size))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) and "u" in header and "c" in header else None


def join_unmixed_recording(stretches: list[Stretch], out: Path, channels: int) -> None:
    """Write an unmixed recording: a 16-bit WAV at the mix's rate (16 kHz) with `channels`
    channels, each holding its participant's tracks where they fall in time (a track starts at
    its first packet), silence elsewhere; the stretches follow one another as the segments of a
    mixed recording do, so the channels line up with the mixed timeline. Written atomically.
    Raises AudioError when there are no stretches or the tools fail."""
    if not stretches or not 1 <= channels <= 5:
        raise AudioError("There is nothing to join.")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".unmixed-") as folder:
        inputs: list[str] = []
        graph: list[str] = []
        for k, stretch in enumerate(stretches):
            end = stretch.end or max([stretch.start, *(_mtime_us(t.mjr) for t in stretch.tracks)])
            seconds = max(0.02, (end - stretch.start) / 1e6)
            placed: dict[int, list[str]] = {}
            for track in stretch.tracks:
                decoded = _mjr_audio(track.mjr, Path(folder) / f"{len(inputs) // 2}")
                if decoded is None or not 0 <= track.channel < channels:
                    continue
                path, first = decoded
                index = len(inputs) // 2
                inputs += ["-i", str(path)]
                offset = (first - stretch.start) / 1e6
                label = f"t{index}"
                shift = (
                    f"adelay=delays={round(offset * 1000)}:all=1"
                    if offset >= 0
                    else f"atrim=start={-offset:.3f},asetpts=PTS-STARTPTS"
                )
                graph.append(
                    f"[{index}:a]aformat=sample_fmts=s16:sample_rates={RECORDING_RATE}"
                    f":channel_layouts=mono,{shift}[{label}]"
                )
                placed.setdefault(track.channel, []).append(f"[{label}]")
            for channel in range(channels):
                labels = placed.get(channel, [])
                name = f"[s{channel}_{k}]"
                trim = f"apad=whole_dur={seconds:.3f},atrim=end={seconds:.3f}"
                if not labels:
                    graph.append(
                        f"anullsrc=r={RECORDING_RATE}:cl=mono,atrim=end={seconds:.3f}{name}"
                    )
                elif len(labels) == 1:
                    graph.append(f"{labels[0]}{trim}{name}")
                else:  # the leg left and came back within the stretch
                    graph.append(
                        f"{''.join(labels)}amix=inputs={len(labels)}:normalize=0"
                        f":duration=longest,{trim}{name}"
                    )
        for channel in range(channels):
            parts = "".join(f"[s{channel}_{k}]" for k in range(len(stretches)))
            graph.append(
                f"{parts}concat=n={len(stretches)}:v=0:a=1,aformat=sample_fmts=s16"
                f":sample_rates={RECORDING_RATE}:channel_layouts=mono[c{channel}]"
            )
        if channels == 1:
            graph.append("[c0]anull[out]")
        else:
            merged = "".join(f"[c{c}]" for c in range(channels))
            layout = UNMIXED_LAYOUTS[channels]
            graph.append(f"{merged}join=inputs={channels}:channel_layout={layout}[out]")
        descriptor, temporary = tempfile.mkstemp(dir=out.parent, prefix=".", suffix=".tmp")
        os.close(descriptor)
        try:
            _run(
                [
                    _tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin",
                    *inputs,
                    "-filter_complex", ";".join(graph),
                    "-map", "[out]", "-c:a", "pcm_s16le",
                    "-map_metadata", "-1", "-bitexact",
                    "-f", "wav", "-y", temporary,
                ],
                None,
                timeout=RECORDING_TIMEOUT,
                what="joining the recording's channels",
                output=False,
            )  # fmt: skip
            os.replace(temporary, out)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _mjr_audio(mjr: Path, base: Path) -> tuple[Path, int] | None:
    """A .mjr as a file ffmpeg reads (janus-pp-rec: Opus to Ogg, G.711 to WAV, gaps in the RTP
    timestamps filled with silence) and when its first packet came (epoch µs); None when it
    holds no audio."""
    header = mjr_header(mjr)
    if header is None:
        return None
    extension = {"opus": ".opus", "pcma": ".wav", "pcmu": ".wav", "g722": ".wav"}.get(
        str(header["c"])
    )
    if extension is None:
        return None
    target = base.with_suffix(extension)
    _run(
        [_tool("janus-pp-rec"), "-d", "0", "-o", str(mjr), str(target)],
        None,
        timeout=RECORDING_TIMEOUT,
        what="converting a participant's recording",
        output=False,
    )
    if not target.exists() or target.stat().st_size == 0:
        return None
    return target, int(header["u"])


def _mtime_us(path: Path) -> int:
    try:
        return int(path.stat().st_mtime * 1e6)
    except OSError:
        return 0


def ogg_opus_seconds(data: bytes) -> float:
    """How long an Ogg Opus stream plays: the last page's granule position (48 kHz samples)
    less the pre-skip of its header."""
    last = data.rfind(b"OggS")
    head = data.find(b"OpusHead")
    if last < 0 or head < 0 or len(data) < last + 14 or len(data) < head + 12:
        return 0.0
    granule = int.from_bytes(data[last + 6 : last + 14], "little", signed=True)
    pre_skip = int.from_bytes(data[head + 10 : head + 12], "little")
    return max(0, granule - pre_skip) / SAMPLE_RATE


# --- internals -------------------------------------------------------------------------------
def _to_opus(
    data: bytes, *, input_format: str, limit: float | None = None, source: str = ""
) -> bytes:
    """`data` (or a lavfi `source`) as mono 48 kHz Ogg Opus in 20 ms frames: AudioBridge reads
    one Opus packet per 20 ms mixer tick, so other frame sizes would play at the wrong speed."""
    if input_format == "lavfi":
        given = ["-f", "lavfi", "-i", source]
    else:
        raw = ["-ar", str(SAMPLE_RATE), "-ac", "1"] if input_format == "s16le" else []
        # Input from stdin only, and only pipes allowed: a file cannot make ffmpeg open
        # another one (HLS or concat playlists, references in container metadata).
        given = ["-protocol_whitelist", "pipe", "-f", input_format, *raw, "-i", "pipe:0"]
    limited = ["-t", f"{limit:g}"] if limit else []
    return _run(
        [
            _tool("ffmpeg"), "-hide_banner", "-loglevel", "error",
            *given, *limited,
            "-vn", "-sn", "-dn", "-map_metadata", "-1",  # cover art and tags stay behind
            "-ar", str(SAMPLE_RATE), "-ac", "1",
            "-c:a", "libopus", "-b:a", OPUS_BITRATE, "-frame_duration", "20",
            "-f", "opus", "pipe:1",
        ],
        data if input_format != "lavfi" else None,
        timeout=CONVERT_TIMEOUT,
        what="converting the audio",
    )  # fmt: skip


def _run(
    command: list[str], data: bytes | None, *, timeout: float, what: str, output: bool = True
) -> bytes:
    """The command's stdout; AudioError if it fails, takes too long, or (`output`) prints
    nothing."""
    try:
        done = subprocess.run(
            command,
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AudioError(f"{what.capitalize()} took longer than {timeout:g} s.") from error
    if done.returncode != 0 or (output and not done.stdout):
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise AudioError(f"{what.capitalize()} failed: {reason}")
    return done.stdout


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (apt-get install {name})")
    return path


def _cache_dir() -> Path:
    folder = Path(settings.DATA_DIR) / "media-cache"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _cache_path(kind: str, what: dict[str, Any]) -> Path:
    key = json.dumps({"kind": kind, "version": CACHE_VERSION, **what}, sort_keys=True)
    return _cache_dir() / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()}.opus"


def _cached(path: Path) -> bool:
    try:
        os.utime(path)  # a cache sweeper can drop what was not used for a while
    except FileNotFoundError:
        return False
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the whole file or none: written beside `path`, then renamed onto it."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""SMS segmentation: which encoding a text needs, how many parts it takes, and those parts.

Pure functions (no Django), shared by the API (segment counts), the SMPP carrier (what it
submits) and the test SMSC.

- GSM-7 (GSM 03.38 default alphabet): 160 septets in one message, 153 per part once a
  user data header (UDH) takes 6 octets. Extension-table characters (``^{}\\[~]|€`` and form
  feed) are an escape plus a septet; the pair is never split between parts.
- UCS-2 for anything else: 70 UTF-16 code units in one message, 67 per part. Characters
  outside the BMP (most emoji) are a surrogate pair, never split between parts.

`encode_gsm7`/`decode_gsm7` convert to and from unpacked septets, one per octet: the form
SMPP's data_coding 0 carries (the SMSC packs them for the air interface).
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67

# GSM 03.38 default alphabet, by septet value (0x1B, the escape, is not a character).
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_ESCAPE = 0x1B
_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_BASIC_CODE = {char: code for code, char in enumerate(_BASIC) if code != _ESCAPE}
_EXTENSION_CHAR = {code: char for char, code in _EXTENSION.items()}


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str  # GSM7 or UCS2
    segments: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)


def _gsm_units(char: str) -> int:
    """Septets `char` takes in GSM-7, or 0 if the alphabet lacks it."""
    if char in _BASIC_CODE:
        return 1
    if char in _EXTENSION:
        return 2
    return 0


def _ucs2_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def is_gsm7(text: str) -> bool:
    return all(_gsm_units(char) for char in text)


def encoding_of(text: str) -> str:
    return GSM7 if is_gsm7(text) else UCS2


def _limits(encoding: str) -> tuple[int, int]:
    return (GSM7_SINGLE, GSM7_PART) if encoding == GSM7 else (UCS2_SINGLE, UCS2_PART)


def _units(text: str, encoding: str) -> list[int]:
    measure = _gsm_units if encoding == GSM7 else _ucs2_units
    return [measure(char) for char in text]


def _split(text: str, encoding: str) -> list[str]:
    single, part = _limits(encoding)
    units = _units(text, encoding)
    if sum(units) <= single:
        return [text]
    # Greedy: a character that does not fit whole starts the next part, so neither an escape
    # pair nor a surrogate pair is ever cut.
    parts: list[str] = []
    start = used = 0
    for index, size in enumerate(units):
        if used + size > part:
            parts.append(text[start:index])
            start, used = index, 0
        used += size
    parts.append(text[start:])
    return parts


def analyze(text: str) -> SegmentInfo:
    encoding = encoding_of(text)
    return SegmentInfo(
        encoding=encoding,
        segments=len(_split(text, encoding)),
        units=sum(_units(text, encoding)),
    )


def count_segments(text: str) -> int:
    """Parts `text` needs; an empty text still counts as one message."""
    return analyze(text).segments


def split(text: str) -> list[str]:
    """The text of each part, in order (one item when the text fits in one message)."""
    return _split(text, encoding_of(text))


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM-7 septets, one per octet. Raises ValueError if `text` is not GSM-7."""
    out = bytearray()
    for char in text:
        code = _BASIC_CODE.get(char)
        if code is not None:
            out.append(code)
        elif char in _EXTENSION:
            out += bytes((_ESCAPE, _EXTENSION[char]))
        else:
            raise ValueError(f"{char!r} is not in the GSM 03.38 alphabet")
    return bytes(out)


def decode_gsm7(data: bytes) -> str:
    """Inverse of `encode_gsm7`; unknown escapes decode as a space, as handsets show them."""
    chars: list[str] = []
    escaped = False
    for octet in data:
        code = octet & 0x7F
        if escaped:
            chars.append(_EXTENSION_CHAR.get(code, " "))
            escaped = False
        elif code == _ESCAPE:
            escaped = True
        else:
            chars.append(_BASIC[code])
    return "".join(chars)

"""GSM 03.38 detection, segment counting and splitting (apps/sms/segments.py)."""

from __future__ import annotations

import pytest

from apps.sms import segments
from apps.sms.segments import GSM7, UCS2, SegmentInfo


def check(text: str, encoding: str, count: int) -> list[str]:
    parts = segments.split(text)
    assert segments.encoding_of(text) == encoding
    assert segments.count_segments(text) == count == len(parts)
    assert "".join(parts) == text
    return parts


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Hello, world!", GSM7),
        ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà", GSM7),
        ("^{}\\[~]|€\f", GSM7),
        ("", GSM7),
        ("ç", UCS2),  # only the capital Ç is in the alphabet
        ("`", UCS2),
        ("Hello 😀", UCS2),
        ("Привет", UCS2),
        ("Price: 5 € — ok", UCS2),  # the em dash forces UCS-2
    ],
)
def test_encoding_of(text: str, encoding: str) -> None:
    assert segments.encoding_of(text) == encoding


def test_gsm7_single_message_boundary() -> None:
    # given / when / then
    check("a" * 160, GSM7, 1)
    check("a" * 161, GSM7, 2)


def test_gsm7_parts_are_153_septets() -> None:
    # given
    text = "b" * (153 * 2)

    # when
    parts = check(text, GSM7, 2)

    # then
    assert [len(part) for part in parts] == [153, 153]
    check(text + "c", GSM7, 3)


def test_extension_chars_count_twice() -> None:
    assert segments.analyze("€" * 80) == SegmentInfo(GSM7, 1, 160)
    assert segments.analyze("€" * 81) == SegmentInfo(GSM7, 2, 162)
    assert segments.analyze("a" * 159 + "\f") == SegmentInfo(GSM7, 2, 161)


def test_an_escape_pair_is_never_split() -> None:
    # given: 152 septets, then an extension char that would straddle the 153 boundary
    text = "a" * 152 + "[" + "a" * 20

    # when
    parts = check(text, GSM7, 2)

    # then
    assert parts[0] == "a" * 152
    assert parts[1].startswith("[")


def test_ucs2_single_message_boundary() -> None:
    check("ж" * 70, UCS2, 1)
    check("ж" * 71, UCS2, 2)


def test_ucs2_parts_are_67_units() -> None:
    # given
    text = "ж" * (67 * 2)

    # when
    parts = check(text, UCS2, 2)

    # then
    assert [len(part) for part in parts] == [67, 67]
    check(text + "ж", UCS2, 3)


def test_emoji_take_two_units_and_are_never_split() -> None:
    # given: 66 units, then an emoji (2 units) that would straddle the 67 boundary
    text = "ж" * 66 + "😀" + "ж" * 10

    # when
    parts = check(text, UCS2, 2)

    # then
    assert parts[0] == "ж" * 66
    assert parts[1].startswith("😀")
    assert segments.analyze("😀" * 35) == SegmentInfo(UCS2, 1, 70)
    assert segments.analyze("😀" * 36).segments == 2


def test_one_non_gsm_char_makes_the_whole_text_ucs2() -> None:
    # given: 100 GSM characters fit one GSM-7 message, not one UCS-2 message
    text = "a" * 99 + "ő"

    # when / then
    parts = check(text, UCS2, 2)
    assert [len(part) for part in parts] == [67, 33]


def test_empty_text_is_one_segment() -> None:
    assert segments.count_segments("") == 1
    assert segments.split("") == [""]


def test_gsm7_round_trip() -> None:
    # given
    text = "@£ Hello {world} €5 ^_^ \\o/ [ok] ~ | ÄÖÑÜ§¿äöñüà\f"

    # when
    encoded = segments.encode_gsm7(text)

    # then
    assert encoded[:2] == b"\x00\x01"  # @ and £
    assert b"\x1b\x65" in encoded  # €
    assert segments.decode_gsm7(encoded) == text
    with pytest.raises(ValueError):
        segments.encode_gsm7("😀")

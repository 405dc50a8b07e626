"""The one reader of JSON input, for every API (ACS, management, WebSocket frames), and the
rules on text that hold everywhere. Kept apart from the views: DRF settings import it.

`loads` refuses, with an `ApiError` in the ACS shape, before any view or command sees it:

- a body that is not JSON, not valid UTF-8 (raw surrogate bytes included), or uses
  NaN/Infinity (`InvalidJson`);
- nesting deeper than `MAX_DEPTH` containers (`InvalidJson`);
- a string, or an object key, holding a lone UTF-16 surrogate (`"\\ud800"`: no database
  stores it, UTF-8 cannot encode it) or a NUL character (PostgreSQL refuses it in text and
  JSON columns) (`InvalidRequest`, naming the field);
- an object key holding any other control character: keys are names (`InvalidRequest`);
- an integer outside the signed 64-bit range, or a number too large for a float (`1e400`):
  no column stores it, and Python's own reader fails on 4,300 digits (`InvalidRequest`).

Other control characters in values are a question of the field (a message may hold a
newline, a phone number may not): field checks use `is_text` for free text and
`is_single_line` for names, ids, numbers and URLs.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from apps.core.errors import ApiError

# Deeper than any ACS or management body (chat participants' metadata is 4 levels): a bound
# on the work one request makes, far below what Python's recursive reader survives.
MAX_DEPTH = 32
# The largest integer a column holds (bigint); the ACS specs use int32 and int64 at most.
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
_MAX_INT_CHARS = len(str(MIN_INT))

# Members whose object is one field to a caller: a string map of the caller's own keys, or a
# CommunicationIdentifierModel, whose parts name one identity. A problem inside one is
# reported on the member itself (`participants[0].communicationIdentifier`, `metadata`).
MAP_MEMBERS = frozenset({"metadata"})
IDENTIFIER_MEMBERS = frozenset(
    {"communicationUser", "phoneNumber", "microsoftTeamsUser", "microsoftTeamsApp",
     "teamsExtensionUser"}
)  # fmt: skip

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_RAW_SUSPECT = re.compile("[\x7f-\x9f\ud800-\udfff]")
_BAD_KEY = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_LAYOUT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class InvalidInput(ApiError):
    """Input refused at the edge: 400 in the ACS shape."""

    code = "InvalidRequest"


class _OutOfRange:
    """Stands in for a number no column stores, so that the walk can name where it was."""


class _Numbers:
    """The number hooks of one decoding; `out_of_range` tells whether any number was."""

    def __init__(self) -> None:
        self.out_of_range = False

    def parse_int(self, text: str) -> int | _OutOfRange:
        # Before int(): Python's own reader fails on 4,300 digits with a ValueError.
        if len(text) <= _MAX_INT_CHARS and MIN_INT <= (number := int(text)) <= MAX_INT:
            return number
        self.out_of_range = True
        return _OutOfRange()

    def parse_float(self, text: str) -> float | _OutOfRange:
        number = float(text)
        if math.isfinite(number):
            return number
        self.out_of_range = True
        return _OutOfRange()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _escape(char: str) -> str:
    return f"\\u{ord(char):04x}"


def bad_character(value: str) -> str | None:
    """The first character of `value` that no text field anywhere takes, escaped for a message
    (a lone surrogate or NUL), or None."""
    if "\x00" in value:
        return _escape("\x00")
    match = _SURROGATE.search(value)
    return _escape(match.group()) if match else None


def is_storable(value: str) -> bool:
    """True when `value` holds no lone surrogate and no NUL: every database stores it."""
    return bad_character(value) is None


def storable(value: str) -> str:
    """`value` with each NUL and lone surrogate replaced by U+FFFD: for text that must be kept
    though it came in broken (a carrier's message), where a caller's would be refused."""
    return _UNSTORABLE.sub("\ufffd", value)


def is_single_line(value: str) -> bool:
    """True when `value` is storable and holds no control character at all (C0, DEL, C1): what
    names, identifiers, phone numbers, tags, URLs and search terms must be."""
    return is_storable(value) and _CONTROL.search(value) is None


def is_text(value: str) -> bool:
    """True when `value` is storable and holds no control character but tab, line feed and
    carriage return: what free text (a message, a description) may be."""
    return is_storable(value) and _CONTROL_BUT_LAYOUT.search(value) is None


def _describe(char: str) -> str:
    if char == "\\u0000":
        return f"a NUL character ({char})"
    if char.startswith(("\\ud", "\\uD")):
        return f"a lone UTF-16 surrogate ({char}), which is not text"
    return f"a control character ({char})"


def _target(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _opaque(key: str | int, value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if key in MAP_MEMBERS:
        return True
    return "rawId" in value or any(isinstance(value.get(name), dict) for name in IDENTIFIER_MEMBERS)


def check_json(data: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Walk decoded JSON and raise InvalidInput (naming the field as `target`) for what no API
    takes: see the module docstring. Iterative, so no input can exhaust the stack."""
    if not _is_clean(data, max_depth):
        _report(data, max_depth)


def _is_clean(data: Any, max_depth: int) -> bool:
    """The walk without paths: most input is clean, and this is several times faster."""
    if not isinstance(data, dict | list):
        return _is_clean_scalar(data)
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > max_depth:
            return False
        if type(container) is dict:
            for key in container:
                if not (key.isascii() and key.isprintable()) and _BAD_KEY.search(key):
                    return False
            items = container.values()
        else:
            items = container
        for item in items:
            kind = type(item)
            if kind is str:
                if "\x00" in item or (not item.isascii() and _SURROGATE.search(item)):
                    return False
            elif kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is _OutOfRange:
                return False
    return True


def _is_clean_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return is_storable(value)
    return not isinstance(value, _OutOfRange)


def _report(data: Any, max_depth: int) -> None:
    """Find the first problem in `data`, in document order, and raise it with its path."""
    # (value, where a problem in it is reported, whether `where` stopped at an opaque member,
    # containers above it); pushed in reverse, so the first problem in the document is named.
    stack: list[tuple[Any, tuple[str | int, ...], bool, int]] = [(data, (), False, 0)]
    while stack:
        value, where, frozen, depth = stack.pop()
        if isinstance(value, str):
            char = bad_character(value)
            if char is not None:
                _refuse(where, f"holds {_describe(char)}")
        elif isinstance(value, _OutOfRange):
            _refuse(where, "is a number out of range (64-bit integers and finite numbers only)")
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                raise InvalidInput(
                    f"The JSON nests deeper than {max_depth} levels.", code="InvalidJson"
                )
            # The root is no field: its members are reported by name.
            frozen = frozen or (bool(where) and _opaque(where[-1], value))
            if isinstance(value, list):
                items: list[tuple[str | int, Any]] = list(enumerate(value))
            else:
                for key in value:
                    match = _CONTROL.search(key) or _SURROGATE.search(key)
                    if match:
                        _refuse(where, f"has a key that holds {_describe(_escape(match.group()))}")
                items = list(value.items())
            stack.extend(
                (item, where if frozen else (*where, key), frozen, depth + 1)
                for key, item in reversed(items)
            )


def _refuse(where: tuple[str | int, ...], problem: str) -> None:
    target = _target(where)
    raise InvalidInput(
        f"{target or 'The request body'} {problem}.", code="InvalidRequest", target=target or None
    )


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode JSON text (bytes must be UTF-8) and check it (`check_json`). Raises InvalidInput:
    `InvalidJson` when it is not JSON we read, `InvalidRequest` naming the field otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInput(
                f"The JSON is not valid UTF-8 (byte {error.start}).", code="InvalidJson"
            ) from None
    numbers = _Numbers()
    try:
        data = json.loads(
            text,
            parse_int=numbers.parse_int,
            parse_float=numbers.parse_float,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise InvalidInput(
            f"The JSON nests deeper than {max_depth} levels.", code="InvalidJson"
        ) from None
    except ValueError as error:
        raise InvalidInput(f"JSON parse error - {error}", code="InvalidJson") from None
    # Text without a single escape holds no C0 control character in any string (the reader
    # refuses raw ones); without raw DEL, C1 or surrogate characters (possible in a str) it
    # holds no other character refused; fewer brackets than the limit cannot nest deeper.
    # Such text, the usual, needs no walk.
    if (
        numbers.out_of_range
        or "\\" in text
        or text.count("[") + text.count("{") > max_depth
        or ("\x7f" in text if text.isascii() else _RAW_SUSPECT.search(text))
    ):
        check_json(data, max_depth=max_depth)
    return data


class AcsJSONParser(JSONParser):
    """JSON bodies for every API, read and checked by `loads`."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            "".encode(encoding)  # a text codec (not bz2_codec, which would inflate the body)
        except (LookupError, UnicodeError):
            raise InvalidInput(
                f"Unsupported charset {encoding!r} in the Content-Type header.", code="InvalidJson"
            ) from None
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise InvalidInput(
                f"The request body is not valid {encoding} (byte {error.start}).",
                code="InvalidJson",
            ) from None
        return loads(text)


class MergePatchJSONParser(AcsJSONParser):
    media_type = "application/merge-patch+json"

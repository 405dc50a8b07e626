"""Phone numbers as the SMS API takes them: E.164 with a plus (`+` and 7 to 15 digits)."""

from __future__ import annotations

import re
from typing import Any

E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # the whole value: no trailing newline, ASCII digits
INVALID_TO = "Invalid 'to' phone number: use E.164, e.g. +14255550123."


def is_e164(value: Any) -> bool:
    return isinstance(value, str) and bool(E164.fullmatch(value))

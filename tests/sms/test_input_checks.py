"""SMS field checks at the edge: phone numbers are whole E.164 strings, and text from a
carrier is kept even when broken, with what no database stores replaced."""

from __future__ import annotations

from typing import Any

import pytest

from apps.sms import services
from apps.sms.addresses import is_e164
from apps.sms.models import SmsMessage

PERSON = "+447700900123"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("+14255550100", True),
        ("+14255550100\n", False),  # `$` would have matched before a trailing newline
        ("+1425555010\u0662", False),  # an Arabic-Indic digit
        ("+1425\x005550100", False),
        (" +14255550100", False),
        ("14255550100", False),
        (14255550100, False),
    ],
)
def test_a_phone_number_is_the_whole_string(value: Any, valid: bool) -> None:
    assert is_e164(value) is valid


def test_a_carriers_text_with_a_nul_or_lone_surrogate_is_kept_with_replacements(
    sender: str,
) -> None:
    # when a carrier hands over text no database stores
    message = services.receive_sms(sender=PERSON, recipient=sender, text="a\x00b\ud800c")

    # then it is stored, the broken characters replaced
    assert message is not None
    assert SmsMessage.objects.get(pk=message.pk).text == "a\ufffdb\ufffdc"


@pytest.mark.parametrize(
    ("sender_value", "recipient_value"),
    [
        ("+4477\x00009001", "{ours}"),
        ("+44770090012345678", "{ours}"),  # longer than any number (the column holds 16)
        (PERSON, "{ours}\x00"),
        (PERSON, "{ours}\n"),
    ],
)
def test_a_carriers_message_between_addresses_that_are_no_numbers_is_dropped(
    sender: str, sender_value: str, recipient_value: str
) -> None:
    # when
    message = services.receive_sms(
        sender=sender_value, recipient=recipient_value.replace("{ours}", sender), text="hi"
    )

    # then
    assert message is None
    assert not SmsMessage.objects.exists()

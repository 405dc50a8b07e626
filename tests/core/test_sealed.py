"""apps.core.sealed: secrets Spool reads back are stored encrypted, readable after a SECRET_KEY
rotation that keeps the old key as a fallback, and a tampered or foreign value is refused."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.core.sealed import SealBroken, seal, unseal


def test_a_sealed_value_reads_back_and_shows_nothing_of_itself() -> None:
    token = seal("test.purpose", "hunter2")
    assert "hunter2" not in token
    assert unseal("test.purpose", token) == "hunter2"
    assert seal("test.purpose", "hunter2") != token  # a fresh IV each time
    assert seal("test.purpose", "") == "" and unseal("test.purpose", "") == ""


def test_a_rotated_secret_key_still_reads_what_the_old_one_sealed() -> None:
    with override_settings(SECRET_KEY="old-key-" + "x" * 50, SECRET_KEY_FALLBACKS=[]):
        token = seal("test.purpose", "hunter2")
    with override_settings(SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=[]):
        with pytest.raises(SealBroken):
            unseal("test.purpose", token)
    with override_settings(
        SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=["old-key-" + "x" * 50]
    ):
        assert unseal("test.purpose", token) == "hunter2"


def test_a_tampered_value_or_another_purposes_is_refused() -> None:
    token = seal("test.purpose", "hunter2")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    for purpose, value in (
        ("test.purpose", tampered),
        ("test.other", token),
        ("test.purpose", "é"),
    ):
        with pytest.raises(SealBroken):
            unseal(purpose, value)

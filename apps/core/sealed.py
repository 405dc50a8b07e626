"""Secrets Spool must be able to read back, stored encrypted: a SIP trunk's digest password
(answering the carrier's challenge needs it in the clear) and a sign-up link's contents.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) with one key per purpose, derived
from SECRET_KEY; keys from SECRET_KEY_FALLBACKS still read what they sealed, so rotating
SECRET_KEY (the old one kept as a fallback) loses nothing. A database dump alone reveals none
of these secrets; with SECRET_KEY it does, as it would forge sessions too.

    token = seal("pstn.trunk-password", "s3cret")
    unseal("pstn.trunk-password", token) == "s3cret"
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac


class SealBroken(Exception):
    """A sealed value this deployment cannot read: altered, or sealed under another key."""


def fernet(purpose: str, value: str = "key") -> MultiFernet:
    """The keys of `purpose`, the current SECRET_KEY's first."""
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(
                    salted_hmac(purpose, value, secret=secret, algorithm="sha256").digest()
                )
            )
            for secret in secrets
        ]
    )


def seal(purpose: str, text: str) -> str:
    """`text` encrypted under `purpose`'s current key ("" stays "": nothing is set)."""
    return fernet(purpose).encrypt(text.encode()).decode() if text else ""


def unseal(purpose: str, token: str) -> str:
    """What seal() sealed ("" for ""). Raises SealBroken."""
    if not token:
        return ""
    try:
        return fernet(purpose).decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeError) as error:
        raise SealBroken(f"a sealed {purpose} cannot be read with this SECRET_KEY") from error

"""Console sign-up that never tells whether a username or an email address has an account.

Every well-formed sign-up gets the same answer ("check your email") after the same work: one
password hash, the same two lookups and one mail queued. Only the mail, which only the
mailbox's owner reads, says what happened:

- the address already has an account: "you have one (its username); sign in, or reset your
  password with this link"; nothing is created or changed;
- the username is taken: "choose another"; nothing is created;
- both are free: a link that creates the account and signs in.

Nothing is stored before the link is followed. The link carries the sign-up itself (username,
address, password hash), encrypted and signed (Fernet) with a key derived from SECRET_KEY, and
expires after PASSWORD_RESET_TIMEOUT like a password-reset link. So signing up with somebody
else's name or address holds neither, there are no unconfirmed accounts to expire, and the
password hash never travels in the clear. A link works once: its account then exists.

The console's form checks only what tells nothing about other accounts (the name's and the
address's shape, the password's strength); the per-address quota SPOOL_QUOTA_SIGN_UPS bounds
the attempts, and the same quota per recipient bounds the mails one address receives.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User as PortalUser
from django.contrib.auth.tokens import default_token_generator
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from apps.accounts.exceptions import (
    SignUpConflict,
    SignUpLinkExpired,
    SignUpLinkInvalid,
    SignUpLinkUsed,
)
from apps.accounts.tasks import send_account_mail
from apps.core import quotas, sealed

logger = logging.getLogger(__name__)

User = get_user_model()

_now = time.time  # tests move it
_KEY_SALT = "apps.accounts.signup"


@dataclass(frozen=True)
class PendingSignUp:
    """A sign-up waiting for its link to be followed; `password` is a hash (make_password)."""

    username: str
    email: str
    password: str


def link_lifetime_text() -> str:
    """How long a sign-up link works, for pages and mails ("3 days")."""
    seconds = int(settings.PASSWORD_RESET_TIMEOUT)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


# --- Asking -----------------------------------------------------------------------------
def request_sign_up(username: str, email: str, password: str, *, site: str) -> None:
    """Answer a sign-up the form found well-formed, by one mail to `email` and nothing else.

    `site` is the console's scheme and host ("https://spool.example.com") for the mail's links.
    Does the same work whether or not the name or the address has an account (see the module
    docstring), so neither the answer nor its time tells. The mail is queued after the commit
    (accounts.tasks.send_account_mail); past the per-recipient quota it is dropped, silently
    for the same reason. Raises nothing that depends on other accounts.
    """
    email = User.objects.normalize_email(email)
    # Hashed in every case, so a taken name or address does not answer sooner.
    encoded = make_password(password)
    holder = User.objects.filter(email__iexact=email).order_by("pk").first()
    name_taken = User.objects.filter(username__iexact=username).exists()
    context: dict[str, Any] = {"site": site, "username": username, "lifetime": link_lifetime_text()}
    if holder is not None:
        subject, template = "You already have a Spool account", "signup_exists"
        context.update(
            username=holder.username,
            active=holder.is_active,
            uid=urlsafe_base64_encode(force_bytes(holder.pk)),
            token=default_token_generator.make_token(holder),
        )
    elif name_taken:
        subject, template = "Choose another Spool username", "signup_username_taken"
    else:
        subject, template = "Confirm your Spool account", "signup_confirm"
        context["token"] = make_link_token(PendingSignUp(username, email, encoded))
    try:
        quotas.spend(
            "sign-up-mails",
            # Hashed: a short key, and no addresses in the cache.
            hashlib.sha256(email.lower().encode()).hexdigest()[:32],
            settings.QUOTAS["sign-ups"],
            what="sign-up mails to one address",
        )
    except quotas.QuotaExceeded:
        logger.info("sign-up mail to an address past its quota not sent")
        return
    body = render_to_string(f"registration/{template}_email.txt", context)
    transaction.on_commit(lambda: send_account_mail.delay(email, subject, body))


# --- The link ---------------------------------------------------------------------------
def _fernet() -> MultiFernet:
    # Links stay good across a SECRET_KEY rotation that keeps the old one as a fallback.
    return sealed.fernet(_KEY_SALT, "link key")


def make_link_token(pending: PendingSignUp) -> str:
    data = json.dumps([pending.username, pending.email, pending.password], separators=(",", ":"))
    # Without base64's padding, which some mail programs leave out of a link.
    return _fernet().encrypt(data.encode()).decode().rstrip("=")


def read_link_token(token: str) -> PendingSignUp:
    """The sign-up a link carries. Raises SignUpLinkInvalid if it was not made here (or was
    altered), SignUpLinkExpired once it is older than PASSWORD_RESET_TIMEOUT."""
    try:
        raw = (token + "=" * (-len(token) % 4)).encode("ascii")
        fernet = _fernet()
        data = json.loads(fernet.decrypt(raw))
        issued = fernet.extract_timestamp(raw)
    except (InvalidToken, UnicodeEncodeError, binascii.Error, ValueError):
        raise SignUpLinkInvalid("This sign-up link is not valid. Sign up again.") from None
    if not (
        isinstance(data, list) and len(data) == 3 and all(isinstance(part, str) for part in data)
    ):
        raise SignUpLinkInvalid("This sign-up link is not valid. Sign up again.")
    if _now() - issued > settings.PASSWORD_RESET_TIMEOUT:
        raise SignUpLinkExpired(
            f"This sign-up link has expired (links work for {link_lifetime_text()}). "
            "Sign up again for a new one."
        )
    return PendingSignUp(*data)


# --- Following the link -----------------------------------------------------------------
def check_sign_up_link(token: str) -> PendingSignUp:
    """The sign-up a link would complete, if it still can (what its page shows before the
    account is created). Raises what confirm_sign_up raises."""
    pending = read_link_token(token)
    _check_still_free(pending)
    return pending


def confirm_sign_up(token: str) -> PortalUser:
    """Create the active account a sign-up link carries; the caller signs it in.

    Whoever follows the link reads the mailbox, so the errors may say what is taken. Raises
    SignUpLinkInvalid or SignUpLinkExpired (read_link_token), SignUpLinkUsed when its account
    exists already (a link works once), SignUpConflict when the name or the address got an
    account since the link was sent.
    """
    pending = read_link_token(token)
    try:
        with transaction.atomic():
            _check_still_free(pending)
            user = User(username=pending.username, email=pending.email, password=pending.password)
            user.save()
    except IntegrityError:
        # Another request took the name between the check and the insert (the same link
        # followed twice at once, say): answered as that request would see it now.
        _check_still_free(pending)
        raise SignUpConflict("This username was just taken. Sign up again.") from None
    logger.info("account %s signed up", user.pk)
    return user


def _check_still_free(pending: PendingSignUp) -> None:
    if User.objects.filter(
        username=pending.username, email__iexact=pending.email, password=pending.password
    ).exists():
        raise SignUpLinkUsed("This link was used already: your account exists. Sign in.")
    if User.objects.filter(email__iexact=pending.email).exists():
        raise SignUpConflict(
            "This email address has an account already. Sign in, or reset your password."
        )
    if User.objects.filter(username__iexact=pending.username).exists():
        raise SignUpConflict(
            f"The username {pending.username} was taken after this link was sent. "
            "Sign up again with another."
        )

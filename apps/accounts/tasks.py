"""Jobs of the accounts app: account mails, and periodic upkeep."""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from celery import shared_task
from django.core.mail import send_mail

from apps.accounts import tokens

logger = logging.getLogger(__name__)


@shared_task
def prune_signing_keys() -> list[str]:
    """Delete token signing keys superseded longer ago than any token can live."""
    removed = tokens.key_store().prune()
    if removed:
        logger.info("pruned signing keys %s", ", ".join(removed))
    return removed


@shared_task(bind=True, max_retries=8)
def send_account_mail(self: Any, to: str, subject: str, body: str) -> None:
    """Send one plain-text account mail a service composed (sign-up answers) to `to`.

    A recipient the mail server refuses for good (5xx) is dropped and logged: retrying would
    not change the answer. Any other failure to hand the mail over (server down, timeout, a
    temporary 4xx) retries with a growing countdown, up to 8 times (about two hours in all).
    """
    try:
        send_mail(subject, body, None, [to])
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if all(code >= 500 for code in codes):
            logger.warning("account mail refused by the mail server: %s", codes)
            return
        raise self.retry(exc=error, countdown=min(3600, 30 * 2**self.request.retries)) from error
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("account mail not sent, retrying: %s", error)
        raise self.retry(exc=error, countdown=min(3600, 30 * 2**self.request.retries)) from error

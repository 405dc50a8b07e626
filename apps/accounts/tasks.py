"""Periodic upkeep of accounts."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.accounts import tokens

logger = logging.getLogger(__name__)


@shared_task
def prune_signing_keys() -> list[str]:
    """Delete token signing keys superseded longer ago than any token can live."""
    removed = tokens.key_store().prune()
    if removed:
        logger.info("pruned signing keys %s", ", ".join(removed))
    return removed

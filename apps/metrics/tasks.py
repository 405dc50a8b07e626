from __future__ import annotations

from celery import shared_task

from apps.metrics import rollup


@shared_task(ignore_result=True)
def roll_up() -> int:
    return rollup.run()


@shared_task(ignore_result=True)
def prune() -> int:
    return rollup.prune()

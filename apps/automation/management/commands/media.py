"""`manage.py media`: the media process of Call Automation (apps/automation/media.py)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from apps.automation import media


class Command(BaseCommand):
    help = "Run the media process: drives Janus AudioBridge for calls with an application."

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        task = asyncio.ensure_future(media.main())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

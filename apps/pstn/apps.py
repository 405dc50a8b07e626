from __future__ import annotations

from django.apps import AppConfig


class PstnConfig(AppConfig):
    name = "apps.pstn"
    label = "pstn"
    verbose_name = "PSTN (SIP trunks and routes)"

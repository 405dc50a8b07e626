from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self) -> None:
        from apps.accounts import origins
        from apps.core.signals import web_serving

        web_serving.connect(origins.listen_on_resource_ports)

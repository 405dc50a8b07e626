from __future__ import annotations

from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "apps.calls"
    label = "calls"

    def ready(self) -> None:
        # The identity socket (accounts) knows nothing of calls: calls adds its commands.
        from apps.accounts.consumers import (
            register_close_hook,
            register_command,
            register_frame_scopes,
        )
        from apps.calls import consumers, signaling

        for name in consumers.COMMANDS:
            register_command(name, consumers.command(name))
        register_frame_scopes(signaling.FRAME_TYPE, signaling.CALL_SCOPES)
        register_close_hook(consumers.socket_closed)  # this process's Janus sessions first
        register_close_hook(signaling.socket_closed)

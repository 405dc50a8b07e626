from __future__ import annotations

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self) -> None:
        # The identity socket (accounts) knows nothing of chat: chat adds its commands.
        from apps.accounts.consumers import register_command, register_frame_scopes
        from apps.chat import consumers, notifications, services

        register_command("chat.resume", consumers.resume)
        register_frame_scopes(notifications.FRAME_TYPE, services.CHAT_SCOPES)

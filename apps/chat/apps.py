from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models import QuerySet
from django.db.models.signals import pre_delete


class ChatConfig(AppConfig):
    name = "apps.chat"
    label = "chat"

    def ready(self) -> None:
        # The identity socket (accounts) knows nothing of chat: chat adds its commands.
        from apps.accounts.consumers import register_command, register_frame_scopes
        from apps.accounts.models import CommunicationIdentity
        from apps.chat import consumers, notifications, services

        register_command("chat.resume", consumers.resume)
        register_frame_scopes(notifications.FRAME_TYPE, services.CHAT_SCOPES)
        pre_delete.connect(_identity_leaves_its_threads, sender=CommunicationIdentity)


def _identity_leaves_its_threads(
    sender: Any, instance: Any, origin: Any = None, **kwargs: Any
) -> None:
    """A deleted identity leaves its threads visibly. Not when its resource is being deleted:
    the threads go with it."""
    from apps.accounts.models import CommunicationIdentity
    from apps.chat import services

    deleting_identities = isinstance(origin, CommunicationIdentity) or (
        isinstance(origin, QuerySet) and origin.model is CommunicationIdentity
    )
    if deleting_identities:
        services.leave_every_thread(instance)

"""Chat in the management API: a resource's threads, their participants and messages, for
operators (readers included). Chatting itself goes through the ACS API with user tokens."""

from __future__ import annotations

from typing import Any

from rest_framework import generics

from apps.accounts import services as accounts
from apps.chat import services
from apps.chat.api import serializers as s
from apps.chat.models import ChatMessage, ChatParticipant, ChatThread


class ThreadList(generics.ListAPIView[ChatThread]):
    serializer_class = s.ChatThreadSerializer

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        return services.threads_of_resource(resource)


class ThreadDetail(generics.RetrieveAPIView[ChatThread]):
    serializer_class = s.ChatThreadSerializer

    def get_object(self) -> ChatThread:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        return services.access_resource_thread(resource, self.kwargs["thread_id"])


class ThreadParticipants(generics.ListAPIView[ChatParticipant]):
    serializer_class = s.ChatParticipantSerializer

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        thread = services.access_resource_thread(resource, self.kwargs["thread_id"])
        return thread.participants.select_related("identity")


class ThreadMessages(generics.ListAPIView[ChatMessage]):
    serializer_class = s.ChatMessageSerializer

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        thread = services.access_resource_thread(resource, self.kwargs["thread_id"])
        return thread.messages.order_by("-sequence_id")

"""The ACS Chat API (`/r/<slug>/chat/...`), as azure-communication-chat calls it, with user
access tokens (Bearer). Views are thin: the rules live in apps.chat.services.

api-version 2025-03-15 (@azure/communication-chat 1.6) adds thread and participant `metadata`
and the thread's `retentionPolicy`. Answers carry them only to callers of that version or later,
so older clients get the shapes they were built for; requests may set them under any version
(an older client never sends them)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.auth import BearerTokenAuthentication, IsResourceCaller
from apps.accounts.services import TokenPrincipal
from apps.chat import checks, notifications, services
from apps.chat.models import ChatMessage, ChatThread, MessageType, ReadReceipt
from apps.chat.notifications import epoch_ms
from apps.core.api import AcsApiView, json_object, page_of, query_int, rfc3339
from apps.core.errors import error_body
from apps.core.identifiers import identifier_model

# @azure/communication-chat 1.6 sends 2025-03-15, azure-communication-chat 1.3 sends
# 2024-03-07; older SDKs send the earlier ones.
CHAT_API_VERSIONS = ("2021-03-07", "2021-09-07", "2023-11-07", "2024-03-07", "2025-03-15")
PROPERTIES_API_VERSION = "2025-03-15"
DEFAULT_PAGE_SIZE = 100


class ChatView(AcsApiView):
    api_versions = CHAT_API_VERSIONS
    quota = "chat"
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsResourceCaller]


def _principal(request: Request) -> TokenPrincipal:
    assert isinstance(request.auth, TokenPrincipal)
    return request.auth


def _with_properties(request: Request) -> bool:
    """Whether the caller's api-version has metadata and retention policies (the versions
    are dates, so they compare as strings)."""
    return str(request.query_params.get("api-version", "")) >= PROPERTIES_API_VERSION


def thread_properties(thread: ChatThread, *, properties: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": thread.pk,
        "topic": thread.topic,
        "createdOn": rfc3339(thread.created_at),
        "createdByCommunicationIdentifier": identifier_model(thread.created_by_raw_id),
    }
    if thread.deleted_at:
        body["deletedOn"] = rfc3339(thread.deleted_at)
    if properties:
        body["metadata"] = thread.metadata
        # Always present, `{"kind": "none"}` for a thread without one: ACS reports a thread
        # created without a policy that way (the .NET SDK's live test Update_Thread_Properties
        # reads a NoneRetentionPolicy back), and the JS SDK accepts either kind.
        body["retentionPolicy"] = notifications.retention_policy(thread)
    return body


def thread_item(thread: ChatThread) -> dict[str, Any]:
    body: dict[str, Any] = {"id": thread.pk, "topic": thread.topic}
    if thread.deleted_at:
        body["deletedOn"] = rfc3339(thread.deleted_at)
    if thread.last_message_at:
        body["lastMessageReceivedOn"] = rfc3339(thread.last_message_at)
    return body


def message_body(message: ChatMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(message.pk),
        "type": message.type,
        "sequenceId": str(message.sequence_id),
        "version": epoch_ms(message.deleted_at or message.edited_at or message.created_at),
        "createdOn": rfc3339(message.created_at),
    }
    if message.sender_raw_id and message.type in services.USER_MESSAGE_TYPES:
        body["senderCommunicationIdentifier"] = identifier_model(message.sender_raw_id)
        body["senderDisplayName"] = message.sender_display_name
        body["metadata"] = message.metadata
    if message.deleted_at:
        body["deletedOn"] = rfc3339(message.deleted_at)
        return body  # a deleted message keeps no content
    if message.edited_at:
        body["editedOn"] = rfc3339(message.edited_at)
    if message.type in services.USER_MESSAGE_TYPES:
        body["content"] = {"message": message.content}
    else:
        content: dict[str, Any] = {
            "initiatorCommunicationIdentifier": identifier_model(message.sender_raw_id)
        }
        if message.type == MessageType.TOPIC_UPDATED:
            content["topic"] = message.topic
        else:
            content["participants"] = message.participants
        body["content"] = content
    return body


def receipt_body(receipt: ReadReceipt) -> dict[str, Any]:
    return {
        "senderCommunicationIdentifier": identifier_model(receipt.reader_raw_id),
        "chatMessageId": str(receipt.message_id),
        "readOn": rfc3339(receipt.read_at),
    }


class Threads(ChatView):
    def post(self, request: Request, slug: str) -> Response:
        thread, invalid = services.create_thread(
            _principal(request),
            json_object(request),
            repeatability_request_id=request.headers.get("repeatability-request-id", ""),
        )
        body: dict[str, Any] = {
            "chatThread": thread_properties(thread, properties=_with_properties(request))
        }
        if invalid:
            body["invalidParticipants"] = invalid
        return Response(body, status=201)

    def get(self, request: Request, slug: str) -> Response:
        threads = services.list_threads(
            _principal(request),
            start_time=checks.parse_start_time(request.query_params.get("startTime")),
        )
        page = page_of(request, threads, "value", default_size=DEFAULT_PAGE_SIZE)
        page["value"] = [thread_item(t) for t in page["value"]]
        return Response(page)


class Thread(ChatView):
    def get(self, request: Request, slug: str, thread_id: str) -> Response:
        access = services.access_thread(_principal(request), thread_id)
        return Response(thread_properties(access.thread, properties=_with_properties(request)))

    def patch(self, request: Request, slug: str, thread_id: str) -> Response:
        services.update_thread(_principal(request), thread_id, json_object(request))
        return Response(status=204)

    def delete(self, request: Request, slug: str, thread_id: str) -> Response:
        services.delete_thread(_principal(request), thread_id)
        return Response(status=204)


class Messages(ChatView):
    def post(self, request: Request, slug: str, thread_id: str) -> Response:
        message = services.send_message(_principal(request), thread_id, json_object(request))
        return Response({"id": str(message.pk)}, status=201)

    def get(self, request: Request, slug: str, thread_id: str) -> Response:
        """Newest first. Pages continue below the last sequence shown (`before`), so messages
        that arrive while a client pages do not shift the pages it has not read yet."""
        messages = services.list_messages(
            _principal(request),
            thread_id,
            start_time=checks.parse_start_time(request.query_params.get("startTime")),
        )
        size = min(query_int(request, "maxPageSize", DEFAULT_PAGE_SIZE, minimum=1), 500)
        before = query_int(request, "before", 0, minimum=0)
        if before:
            messages = messages.filter(sequence_id__lt=before)
        chunk = list(messages[: size + 1])
        body: dict[str, Any] = {"value": [message_body(m) for m in chunk[:size]]}
        if len(chunk) > size:
            query = request.query_params.copy()
            query["before"] = str(chunk[size - 1].sequence_id)
            query["maxPageSize"] = str(size)
            body["nextLink"] = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response(body)


class Message(ChatView):
    def get(self, request: Request, slug: str, thread_id: str, message_id: str) -> Response:
        return Response(
            message_body(services.get_message(_principal(request), thread_id, message_id))
        )

    def patch(self, request: Request, slug: str, thread_id: str, message_id: str) -> Response:
        services.edit_message(_principal(request), thread_id, message_id, json_object(request))
        return Response(status=204)

    def delete(self, request: Request, slug: str, thread_id: str, message_id: str) -> Response:
        services.delete_message(_principal(request), thread_id, message_id)
        return Response(status=204)


class Participants(ChatView):
    def get(self, request: Request, slug: str, thread_id: str) -> Response:
        participants = services.list_participants(_principal(request), thread_id)
        page = page_of(request, participants, "value", default_size=DEFAULT_PAGE_SIZE)
        metadata = _with_properties(request)
        page["value"] = [services.participant_body(p, metadata=metadata) for p in page["value"]]
        return Response(page)


class AddParticipants(ChatView):
    def post(self, request: Request, slug: str, thread_id: str) -> Response:
        invalid = services.add_participants(_principal(request), thread_id, json_object(request))
        return Response({"invalidParticipants": invalid} if invalid else {}, status=201)


class RemoveParticipant(ChatView):
    def post(self, request: Request, slug: str, thread_id: str) -> Response:
        services.remove_participant(_principal(request), thread_id, json_object(request))
        return Response(status=204)


class Typing(ChatView):
    def post(self, request: Request, slug: str, thread_id: str) -> Response:
        services.send_typing(_principal(request), thread_id, json_object(request))
        return Response(status=200)


class ReadReceipts(ChatView):
    def post(self, request: Request, slug: str, thread_id: str) -> Response:
        services.send_read_receipt(_principal(request), thread_id, json_object(request))
        return Response(status=200)

    def get(self, request: Request, slug: str, thread_id: str) -> Response:
        receipts = services.list_read_receipts(_principal(request), thread_id)
        page = page_of(request, receipts, "value", default_size=DEFAULT_PAGE_SIZE)
        page["value"] = [receipt_body(r) for r in page["value"]]
        return Response(page)


class RealtimeNotificationConfig(APIView):
    """GET /chat/config/realTimeNotifications: where the JS SDK's startRealtimeNotifications()
    (in a browser) asks for Azure's realtime service (Trouter) before connecting to it. Spool
    has no Trouter: 501 makes the SDK reject at once with this message in its error (it retries
    a 200 forever, and 5xx other than 501 and 505 several times) and points to Spool's socket.
    Any api-version is answered: the SDK sends its own (2024-09-01), not the chat API's."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsResourceCaller]
    renderer_classes = [JSONRenderer]
    schema = None

    def get(self, request: Request, slug: str) -> Response:
        script = f"{settings.PUBLIC_URL}/static/chat/spool-chat.js"
        scheme = "wss" if request.is_secure() else "ws"
        socket = f"{scheme}://{request.get_host()}/ws/"
        message = (
            "Spool does not run Azure's realtime notification service (Trouter), so "
            "ChatClient.startRealtimeNotifications() of @azure/communication-chat cannot "
            "connect. Keep the SDK for the API calls, and take live chat events from Spool's "
            f"chat socket ({socket}?access_token=<token>) with Spool's chat client: load "
            f"{script} and call new SpoolChat.ChatClient(endpoint, credential)"
            ".startRealtimeNotifications() and .on(event, listener), the same events as the "
            "SDK's. See docs/chat-realtime-with-sdk.md and docs/chat-client.md."
        )
        return Response(error_body("RealtimeNotificationsNotSupported", message), status=501)

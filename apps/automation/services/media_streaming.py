"""Call Automation's media streaming: mediaStreamingOptions checked, a connection's
streaming started or stopped on request, and what the media process asks and reports (its
plans, MediaStreamingStarted / Stopped / Failed).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts import services as accounts
from apps.automation import callbacks
from apps.automation.exceptions import InvalidAutomationRequest, NotSupported
from apps.automation.models import CallConnection, ConnectionState, MediaStreaming, StreamingState
from apps.automation.services.shared import MAX_OPERATION_CONTEXT, _live, _operation_uri, _text
from apps.calls import media_link
from apps.core.outbound import WEBSOCKET_SCHEMES, check_url

AUDIO_FORMATS = ("pcm16KMono", "pcm24KMono")


def check_media_streaming_options(options: Any) -> dict[str, Any] | None:
    """ACS mediaStreamingOptions, checked; None when absent. Raises InvalidAutomationRequest,
    NotSupported, UnsafeUrl (the transport URL must be a ws(s) URL; its address is checked when
    the media process connects)."""
    if options is None:
        return None
    field = "mediaStreamingOptions"
    if not isinstance(options, dict):
        raise InvalidAutomationRequest(f"{field} must be an object.", target=field)
    if str(options.get("transportType") or "websocket").lower() != "websocket":
        raise NotSupported(f"{field}.transportType must be websocket.", target=field)
    url = check_url(
        options.get("transportUrl"), target=f"{field}.transportUrl", schemes=WEBSOCKET_SCHEMES
    )
    channel = str(options.get("audioChannelType") or "mixed").lower()
    if channel not in ("mixed", "unmixed"):
        raise InvalidAutomationRequest(
            f"{field}.audioChannelType must be mixed or unmixed.", target=field
        )
    if str(options.get("contentType") or "audio").lower() != "audio":
        raise NotSupported(f"{field}.contentType must be audio.", target=field)
    audio_format = str(options.get("audioFormat") or AUDIO_FORMATS[0])
    matched = [f for f in AUDIO_FORMATS if f.lower() == audio_format.lower()]
    if not matched:
        raise InvalidAutomationRequest(
            f"{field}.audioFormat must be pcm16KMono or pcm24KMono.", target=field
        )
    flags = {}
    for name in ("enableBidirectional", "startMediaStreaming", "enableDtmfTones"):
        value = options.get(name)
        if value is not None and not isinstance(value, bool):
            raise InvalidAutomationRequest(f"{field}.{name} must be true or false.", target=field)
        flags[name] = bool(value)
    if flags["enableDtmfTones"]:
        raise NotSupported(f"{field}.enableDtmfTones is not offered here.", target=field)
    return {
        "url": url,
        "channel": channel,
        "format": matched[0],
        "bidirectional": flags["enableBidirectional"],
        "start": flags["startMediaStreaming"],
    }


def _create_media_streaming(connection: CallConnection, options: dict[str, Any] | None) -> None:
    if options is None:
        return
    MediaStreaming.objects.create(
        connection=connection,
        transport_url=options["url"],
        audio_channel_type=options["channel"],
        audio_format=options["format"],
        bidirectional=options["bidirectional"],
        wanted=options["start"],
        created_at=timezone.now(),
    )
    # A connection still connecting streams once connected (the media process looks then).
    media_link.send_after_commit({"type": "streaming", "call": str(connection.call_id)})


def streaming_subscription(connection: CallConnection) -> dict[str, Any] | None:
    """The connection's mediaStreamingSubscription, as ACS shows it in the call connection."""
    streaming = MediaStreaming.objects.filter(connection=connection).first()
    if streaming is None:
        return None
    return {
        "id": str(streaming.pk),
        "state": streaming.state,
        "subscribedContentTypes": ["audio"],
    }


def set_media_streaming(connection: CallConnection, body: dict[str, Any], on: bool) -> None:
    """Start or stop the connection's media streaming (configured by mediaStreamingOptions on
    answer, create or connect); MediaStreamingStarted / Stopped / Failed follow from the media
    process. Raises WrongCallState, InvalidAutomationRequest."""
    _live(connection)
    context = _text(body, "operationContext", limit=MAX_OPERATION_CONTEXT)
    url = _operation_uri(body)
    with transaction.atomic():
        streaming = MediaStreaming.objects.select_for_update().filter(connection=connection).first()
        if streaming is None:
            raise InvalidAutomationRequest(
                "Media streaming is not set up for this call: pass mediaStreamingOptions when "
                "answering, creating or connecting it."
            )
        if streaming.wanted == on:
            raise InvalidAutomationRequest(
                "Media streaming is already " + ("started." if on else "stopped.")
            )
        MediaStreaming.objects.filter(pk=streaming.pk).update(
            wanted=on, operation_context=context, callback_uri=url
        )
        media_link.send_after_commit({"type": "streaming", "call": str(connection.call_id)})


def media_streaming_plans(call_id: str) -> list[dict[str, Any]]:
    """For the media process: each live connection's streaming of this call, what the
    application wants, and what the stream needs (its URL, headers, options)."""
    from apps.accounts.tokens import sign

    plans = []
    for streaming in MediaStreaming.objects.filter(connection__call_id=call_id).select_related(
        "connection__resource"
    ):
        connection = streaming.connection
        now = int(timezone.now().timestamp())
        # As ACS does, the application can tell it is Spool calling: a token signed with the
        # keys at /.well-known/jwks.json, as callbacks carry.
        token = sign(
            {
                "iss": settings.PUBLIC_URL or "spool",
                "aud": accounts.resource_endpoint(connection.resource),
                "sub": f"calling/callConnections/{connection.pk}",
                "jti": uuid.uuid4().hex,
                "iat": now,
                "exp": now + 300,
            }
        )
        plans.append(
            {
                "id": str(streaming.pk),
                "connection": str(connection.pk),
                "wanted": streaming.wanted and connection.state == ConnectionState.CONNECTED,
                "active": streaming.state == StreamingState.ACTIVE,
                "url": streaming.transport_url,
                "unmixed": streaming.audio_channel_type == "unmixed",
                "format": streaming.audio_format,
                "bidirectional": streaming.bidirectional,
                "headers": {
                    "Authorization": f"Bearer {token}",
                    "x-ms-call-connection-id": str(connection.pk),
                    "x-ms-call-correlation-id": str(connection.correlation_id),
                },
            }
        )
    return plans


def streaming_due() -> list[str]:
    """Calls whose streaming is not as the application wants it (for the media process)."""
    rows = MediaStreaming.objects.filter(
        Q(wanted=True, state=StreamingState.INACTIVE, connection__state=ConnectionState.CONNECTED)
        | Q(wanted=False, state=StreamingState.ACTIVE)
    )
    return sorted({str(call_id) for call_id in rows.values_list("connection__call_id", flat=True)})


def _streaming_update(streaming: MediaStreaming, status: str, details: str) -> dict[str, Any]:
    return {
        "mediaStreamingUpdate": {
            "contentType": "Audio",
            "mediaStreamingStatus": status,
            "mediaStreamingStatusDetails": details,
        },
        "operationContext": streaming.operation_context or None,
    }


def media_streaming_started(subscription_id: str) -> None:
    """The media process streams: active, then MediaStreamingStarted (a stop asked for
    meanwhile is applied after it, so Stopped follows)."""
    with transaction.atomic():
        streaming = (
            MediaStreaming.objects.select_for_update()
            .select_related("connection")
            .filter(pk=subscription_id)
            .first()
        )
        if streaming is None:
            return
        MediaStreaming.objects.filter(pk=streaming.pk).update(
            state=StreamingState.ACTIVE, started_at=timezone.now(), failure=""
        )
        if streaming.connection.state == ConnectionState.CONNECTED:
            callbacks.emit(
                streaming.connection,
                "MediaStreamingStarted",
                _streaming_update(streaming, "mediaStreamingStarted", "subscriptionStarted"),
                url=streaming.callback_uri,
                result=(200, 0, "Action completed successfully."),
            )


def media_streaming_ended(
    subscription_id: str, *, details: str = "", message: str = "", callback: bool = True
) -> None:
    """The media process stopped streaming: inactive, then MediaStreamingStopped, or (with
    `details`, a failure) MediaStreamingFailed, unless the connection has ended (CallDisconnected
    is its last callback) or `callback` is False."""
    with transaction.atomic():
        streaming = (
            MediaStreaming.objects.select_for_update()
            .select_related("connection")
            .filter(pk=subscription_id)
            .first()
        )
        if streaming is None:
            return
        fields: dict[str, Any] = {"state": StreamingState.INACTIVE, "stopped_at": timezone.now()}
        if details:
            fields.update(wanted=False, failure=message[:300])
        MediaStreaming.objects.filter(pk=streaming.pk).update(**fields)
        if not callback or streaming.connection.state != ConnectionState.CONNECTED:
            return
        if details:
            callbacks.emit(
                streaming.connection,
                "MediaStreamingFailed",
                _streaming_update(streaming, "mediaStreamingFailed", details),
                url=streaming.callback_uri,
                result=(400, 8603, message or "Action failed, media streaming failed."),
            )
        else:
            callbacks.emit(
                streaming.connection,
                "MediaStreamingStopped",
                _streaming_update(streaming, "mediaStreamingStopped", "subscriptionStopped"),
                url=streaming.callback_uri,
                result=(200, 0, "Action completed successfully."),
            )

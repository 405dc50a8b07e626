"""ACS Chat API routes, mounted under /r/<slug>/."""

from __future__ import annotations

from django.urls import path, re_path

from apps.chat.api import acs_views

THREAD = "chat/threads/<str:thread_id>"

urlpatterns = [
    path("chat/threads", acs_views.Threads.as_view()),
    path(THREAD, acs_views.Thread.as_view()),
    path(f"{THREAD}/messages", acs_views.Messages.as_view()),
    path(f"{THREAD}/messages/<str:message_id>", acs_views.Message.as_view()),
    path(f"{THREAD}/participants", acs_views.Participants.as_view()),
    path(f"{THREAD}/participants/:add", acs_views.AddParticipants.as_view()),
    path(f"{THREAD}/participants/:remove", acs_views.RemoveParticipant.as_view()),
    path(f"{THREAD}/typing", acs_views.Typing.as_view()),
    path(f"{THREAD}/readReceipts", acs_views.ReadReceipts.as_view()),
    # The JS SDK joins its endpoint (which usually ends with "/") and "/chat/config/...", so
    # the path may arrive with a double slash: `/r/<slug>//chat/...`, or `//chat/...` on a
    # resource's own origin. ("(?:/)?" rather than "/?": Django warns about patterns that
    # begin with a slash, urls.W002.)
    re_path(
        r"^(?:/)?chat/config/realTimeNotifications$",
        acs_views.RealtimeNotificationConfig.as_view(),
    ),
]

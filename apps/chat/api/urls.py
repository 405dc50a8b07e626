"""Chat routes of the management API, mounted under /api/v1/."""

from __future__ import annotations

from django.urls import path

from apps.chat.api import views

THREAD = "resources/<slug:slug>/chat/threads/<str:thread_id>"

urlpatterns = [
    path("resources/<slug:slug>/chat/threads/", views.ThreadList.as_view()),
    path(f"{THREAD}/", views.ThreadDetail.as_view()),
    path(f"{THREAD}/participants/", views.ThreadParticipants.as_view()),
    path(f"{THREAD}/messages/", views.ThreadMessages.as_view()),
]

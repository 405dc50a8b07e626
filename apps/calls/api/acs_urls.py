"""ACS Rooms API routes, mounted under /r/<slug>/."""

from __future__ import annotations

from django.urls import path

from apps.calls.api import acs_views

urlpatterns = [
    path("rooms", acs_views.Rooms.as_view()),
    path("rooms/<str:room_id>", acs_views.RoomDetail.as_view()),
    path("rooms/<str:room_id>/participants", acs_views.RoomParticipants.as_view()),
    path("networkTraversal/:issueRelayConfiguration", acs_views.IssueRelayConfiguration.as_view()),
]
